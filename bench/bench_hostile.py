"""Benchmarks of hostile and extreme clients against real server processes (issue 7).

a. slowloris: connections that send a request head one byte per second, closed by the
   head deadline, while a probe asks ``GET /hello`` on fresh connections every 50 ms;
b. EMFILE: a server whose descriptor limit is 128 holds ~300 clients: CPU and log
   it spends meanwhile, and how fast it serves again once they go;
c. distinct cursors: the chat with 10,000 room long-polls parked at 10,000 different
   cursors, woken by one typing signal, then timing out, while a probe asks for a cheap
   page every 10 ms (the loop's stall, the probe's latency); the server's GC pauses;
d. drain: 10,000 parked long-polls and SIGTERM: complete answers, time to exit;
e. churn: 100,000 parked requests with pipelined input behind them, half answered by a
   publish, half reset by the client while parked: RSS after each 10,000.

Every section runs its own server process on 127.0.0.1 (sections are independent) and
can run alone: ``--only cursors`` (several: ``--only slowloris,drain``).

Run from the repo root: ``.venv/bin/python bench/bench_hostile.py [--quick] [--only ...]``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    HOST,
    ONE_ADDRESS,
    PYTHON,
    ROOT,
    BenchError,
    LongPolls,
    ServerError,
    ServerProcess,
    _Pending,
    busy_note,
    comet_stats,
    cpu_seconds,
    http_get,
    percentile,
    print_table,
    raise_fd_limit,
    rss_kib,
    save_results,
    status,
    verdict,
    wait_parked,
)
from bench.bench_chat import Client, manage
from tests.helpers.proc import (  # noqa: E402  (after the sys.path line)
    PRODUCTION_ENV,
    UNLIMITED_CHAT_ENV,
    runcomet_argv,
    wait_until,
    wsgi_app_argv,
)

SECTIONS = ("slowloris", "emfile", "cursors", "drain", "churn")

# Sizes: (full run, --quick).
SIZES = {
    "slowloris": (1500, 150),  # connections
    "head_timeout": (10.0, 3.0),  # the server's --head-timeout (10 is the default)
    "emfile_clients": (300, 300),
    "emfile_hold": (10.0, 3.0),  # seconds the clients are held at the fd limit
    "cursors": (10000, 1000),  # parked long-polls, each at its own cursor
    "drain": (10000, 1000),
    "churn": (100000, 10000),  # parked requests in all
    "churn_batch": (2000, 1000),
    "churn_sample": (10000, 2000),  # RSS sampled after this many parked requests
}

CHURN_WARMUP = 10000  # churn: cycles before the first RSS sample
HEAD_CLOSE_SLACK = 2.0  # slowloris: closed within the head timeout plus this
TARGET_STALL_MS = 50.0
TARGET_PROBE_P99_MS = 100.0
TARGET_DRAIN_S = 2.0
TARGET_RSS_GROWTH = 0.05  # churn: last sample within 5% of the first
EMFILE_NOFILE = 128
ROOM = "stall"
FILLER_ROOM = "random"
POLL_TIMEOUT_ENV = "BENCH_HOSTILE_POLL_TIMEOUT"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)

Row = tuple[str, str, str, str]


# -- a probe in its own process ------------------------------------------------------------


def _read_answer(sock: socket.socket) -> int:
    """Read one HTTP answer (Content-Length framed, or to EOF); its status code."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the answer's head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1])
    match = _CONTENT_LENGTH.search(head + b"\r\n")
    if match is None:
        while sock.recv(65536):
            pass
        return code
    left = int(match.group(1)) - len(body)
    while left > 0:
        chunk = sock.recv(min(left, 65536))
        if not chunk:
            raise ConnectionError("closed in the answer's body")
        left -= len(chunk)
    return code


def _probe_main(port: int, path: str, interval: float, keep_alive: bool, stop, out) -> None:
    """The probe process: ``GET path`` every ``interval`` s until ``stop`` is set; sends
    back ``[(sent_at, latency_s, status)]`` (status 0: failed)."""
    request = (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
               + ("" if keep_alive else "Connection: close\r\n") + "\r\n").encode()
    samples: list[tuple[float, float, int]] = []
    sock: socket.socket | None = None
    told = False
    next_at = time.perf_counter()
    while not stop.is_set():
        wait = next_at - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        sent = time.perf_counter()
        next_at = sent + interval
        try:
            if sock is None:
                sock = socket.create_connection((HOST, port), timeout=10)
            sock.sendall(request)
            code = _read_answer(sock)
        except OSError:
            code = 0
        samples.append((sent, time.perf_counter() - sent, code))
        if code and not told:
            out.send("ready")  # answered once: the probe is running
            told = True
        if sock is not None and (not keep_alive or code == 0):
            sock.close()
            sock = None
    out.send(samples)
    out.close()


class Probe:
    """``GET path`` every ``interval`` seconds from a separate process (spawned: it shares
    neither the GIL nor the descriptors of the bench's own client loops)."""

    def __init__(self, port: int, path: str, interval: float, *, keep_alive: bool) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.interval = interval
        self._stop = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_probe_main, daemon=True,
                                 args=(port, path, interval, keep_alive, self._stop, send))
        self._proc.start()
        send.close()
        self.samples: list[tuple[float, float, int]] = []

    def wait_started(self, timeout: float = 30.0) -> None:
        """Wait until the probe has had an answer (a spawned interpreter takes a moment)."""
        if not self._recv.poll(timeout) or self._recv.recv() != "ready":
            self._proc.kill()
            raise BenchError(f"the probe got no answer within {timeout:g}s")

    def stop(self) -> list[tuple[float, float, int]]:
        self._stop.set()
        if not self._recv.poll(30):
            self._proc.kill()
            raise BenchError("the probe process sent no samples")
        self.samples = self._recv.recv()
        self._proc.join(10)
        return self.samples

    def window(self, start: float, end: float) -> dict:
        """Figures of the probes that overlap ``[start, end]`` (perf_counter times)."""
        inside = [s for s in self.samples if s[0] <= end and s[0] + s[1] >= start]
        ok = sorted(lat * 1000 for _, lat, code in inside if 200 <= code < 300)
        # Gaps between consecutive answers, counting the one that spans the window's
        # start (a stall that begins with the window delays the answer before it ends).
        done = sorted(sent + lat for sent, lat, _ in self.samples)
        gaps = [b - a for a, b in zip(done, done[1:], strict=False) if b >= start and a <= end]
        return {
            "probes": len(inside),
            "failed": sum(1 for s in inside if not 200 <= s[2] < 300),
            "p50_ms": percentile(ok, 50),
            "p99_ms": percentile(ok, 99),
            "max_ms": ok[-1] if ok else float("nan"),
            "max_gap_ms": max(gaps) * 1000 if gaps else float("nan"),
            # A loop that stalls S ms delays the answers around it by S: the longest
            # gap between two answers, less the probe's own interval.
            "stall_ms": max(0.0, max(gaps) - self.interval) * 1000 if gaps else float("nan"),
        }


# -- helpers --------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.05) -> Any:
    """The harness's wait_until, failing as a bench does (one line, no traceback)."""
    try:
        return wait_until(predicate, timeout, message=what, interval=interval)
    except AssertionError as exc:
        raise BenchError(str(exc)) from None


def stats_or_none(port: int) -> dict | None:
    try:
        return comet_stats(port)
    except (OSError, BenchError, ValueError):
        return None


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0f} ms"


def probe_rows(name: str, fig: dict, *, targets: bool) -> list[Row]:
    rows: list[Row] = [
        (f"{name}: probe p50 / p99 / max", f"{ms(fig['p50_ms'])} / {ms(fig['p99_ms'])} / "
         f"{ms(fig['max_ms'])}", f"p99 <= {TARGET_PROBE_P99_MS:g} ms" if targets else "",
         verdict(fig["p99_ms"] <= TARGET_PROBE_P99_MS) if targets else ""),
    ]
    if targets:
        rows.append((f"{name}: loop stall (longest gap - interval)", ms(fig["stall_ms"]),
                     f"<= {TARGET_STALL_MS:g} ms", verdict(fig["stall_ms"] <= TARGET_STALL_MS)))
    rows.append((f"{name}: probes in the window (failed)",
                 f"{fig['probes']} ({fig['failed']})", "", verdict(fig["failed"] == 0)))
    return rows


# -- a. slowloris ---------------------------------------------------------------------------


def bench_slowloris(count: int, head_timeout: float) -> tuple[dict, list[Row]]:
    """``count`` connections each sending a request head one byte per second."""
    head = (b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n"
            + b"X-Padding: " + b"a" * 200 + b"\r\n\r\n")
    argv = wsgi_app_argv("bench.apps:comet", "--head-timeout", f"{head_timeout:g}",
                         *ONE_ADDRESS)
    with ServerProcess(argv, name="comet-slowloris") as server:
        port = server.port
        probe = Probe(port, "/hello", 0.05, keep_alive=False)
        probe.wait_started()
        base = wait_for(lambda: stats_or_none(port), 10, "stats")["connections"]
        epoll = select.epoll()
        conns: dict[int, dict] = {}
        status(f"slowloris: opening {count} connections, one byte per second each "
               f"(--head-timeout {head_timeout:g})")
        t_start = time.perf_counter()
        try:
            for first in range(0, count, 250):
                for _ in range(min(250, count - first)):
                    sock = socket.create_connection((HOST, port), timeout=10)
                    sock.send(head[:1])
                    sock.setblocking(False)
                    conns[sock.fileno()] = {"sock": sock, "opened": time.perf_counter(),
                                            "sent": 1, "closed": 0.0, "got": b""}
                    epoll.register(sock.fileno(), select.EPOLLIN)
                opened = len(conns)
                wait_for(lambda n=opened: (stats_or_none(port) or {}).get(
                    "connections", 0) >= base + n, 30, "the server to accept them")
            open_left = len(conns)
            next_tick = time.perf_counter() + 1.0
            deadline = time.perf_counter() + head_timeout + 20
            peak = stats_or_none(port) or {}
            while open_left and time.perf_counter() < deadline:
                now = time.perf_counter()
                if now >= next_tick:
                    next_tick += 1.0
                    for item in conns.values():
                        if not item["closed"] and item["sent"] < len(head) - 4:
                            try:
                                item["sock"].send(head[item["sent"]:item["sent"] + 1])
                                item["sent"] += 1
                            except (BlockingIOError, InterruptedError):
                                pass
                            except OSError:
                                pass  # reset: the read below sees it
                for fd, _ in epoll.poll(max(0.0, next_tick - time.perf_counter())):
                    item = conns[fd]
                    try:
                        data = item["sock"].recv(4096)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    item["got"] += data
                    if not data:
                        item["closed"] = time.perf_counter()
                        epoll.unregister(fd)
                        item["sock"].close()
                        open_left -= 1
            t_end = time.perf_counter()
            time.sleep(0.3)
        finally:
            epoll.close()
            for item in conns.values():
                if not item["closed"]:
                    item["sock"].close()
            probe.stop()
        server.check_alive()
        stats = comet_stats(port)
    closes = sorted(i["closed"] - i["opened"] for i in conns.values() if i["closed"])
    got_408 = sum(1 for i in conns.values() if i["got"].startswith(b"HTTP/1.1 408 "))
    in_window = sum(1 for c in closes if head_timeout - 0.1 <= c <= head_timeout + HEAD_CLOSE_SLACK)
    fig = probe.window(t_start, t_end)
    result = {
        "connections": count, "head_timeout_s": head_timeout, "closed": len(closes),
        "answered_408": got_408, "closed_within_deadline_plus_slack": in_window,
        "close_after_s": {"min": closes[0] if closes else None,
                          "median": statistics.median(closes) if closes else None,
                          "max": closes[-1] if closes else None},
        "bytes_sent_per_connection_max": max(i["sent"] for i in conns.values()),
        "attack_seconds": t_end - t_start, "probe": fig,
        "stats_at_peak": peak, "refused_total_after": stats["refused_total"],
    }
    limit = head_timeout + HEAD_CLOSE_SLACK
    rows: list[Row] = [
        (f"slowloris: {count:,} conns closed by the head deadline",
         f"{len(closes):,} ({got_408:,} with a 408)", f"{count:,}",
         verdict(len(closes) == count)),
        ("slowloris: closed after (min / median / max)",
         f"{closes[0]:.2f} / {statistics.median(closes):.2f} / {closes[-1]:.2f} s"
         if closes else "none", f"{head_timeout:g}-{limit:g} s",
         verdict(bool(closes) and closes[0] >= head_timeout - 0.1 and closes[-1] <= limit)),
        *probe_rows("slowloris: GET /hello, new conn /50 ms", fig, targets=False),
    ]
    return result, rows


# -- b. EMFILE ------------------------------------------------------------------------------


def bench_emfile(clients: int, hold: float) -> tuple[dict, list[Row]]:
    def lower_limit() -> None:  # the server's RLIMIT_NOFILE, soft and hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (EMFILE_NOFILE, EMFILE_NOFILE))

    argv = wsgi_app_argv("bench.apps:comet", "--max-connections", "100000", *ONE_ADDRESS)
    with ServerProcess(argv, name="comet-emfile", preexec_fn=lower_limit) as server:
        port = server.port
        request = f"GET /wait HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
        status(f"emfile: server limited to {EMFILE_NOFILE} descriptors; holding {clients} "
               "parked clients")
        if http_get(port, "/hello")[0] != 200:
            raise BenchError("GET /hello failed before the test")
        fds_idle = open_fds(server.pid)
        log_path = server.stderr_path
        socks = []
        try:
            for _ in range(clients):
                sock = socket.create_connection((HOST, port), timeout=10)
                sock.sendall(request)
                socks.append(sock)
            # Settled: the server took what its descriptors allow and said so.
            wait_for(lambda: "Too many open files" in log_path.read_text(errors="replace"),
                     15, "the server to run out of descriptors")
            time.sleep(0.5)
            fds_full = open_fds(server.pid)
            cpu0, log0, t0 = cpu_seconds(server.pid), log_path.stat().st_size, time.monotonic()
            time.sleep(hold)
            cpu1, log1, t1 = cpu_seconds(server.pid), log_path.stat().st_size, time.monotonic()
            log_text = log_path.read_text(errors="replace")
            accept_lines = log_text.count("accept()")
            server.check_alive()
            status("emfile: closing the clients; timing until GET /hello is answered")
            closed_at = time.perf_counter()
        finally:
            for sock in socks:
                sock.close()
        code, _, _ = http_get(port, "/hello", timeout=30)
        recovered = time.perf_counter() - closed_at
        more = [http_get(port, "/hello")[0] for _ in range(100)]
        stats = comet_stats(port)
        server.check_alive()
    cpu = cpu1 - cpu0
    window = t1 - t0
    result = {
        "nofile": EMFILE_NOFILE, "clients": clients, "fds_idle": fds_idle,
        "fds_while_held": fds_full, "clients_accepted": fds_full - fds_idle,
        "hold_seconds": window, "cpu_seconds": cpu, "cpu_share": cpu / window,
        "log_bytes": log1 - log0, "accept_log_lines_total": accept_lines,
        "recovery_seconds": recovered, "first_status_after": code,
        "next_100_ok": sum(1 for c in more if c == 200), "cap_hits": stats["cap_hits"],
    }
    rows: list[Row] = [
        (f"emfile: fds in use with {clients} clients (limit {EMFILE_NOFILE})",
         f"{fds_full} ({fds_full - fds_idle} clients taken)", "", ""),
        (f"emfile: server CPU over {window:.0f} s at the limit",
         f"{cpu:.2f} s ({cpu / window:.1%})",
         "~0 (no busy loop)", verdict(cpu / window < 0.05)),
        (f"emfile: log written over {window:.0f} s", f"{log1 - log0:,} bytes",
         "<= 1 line/s", verdict(log1 - log0 <= 200 * math.ceil(window + 1))),
        ("emfile: clients closed -> GET /hello answered", f"{recovered * 1000:.0f} ms",
         "serves again", verdict(code == 200 and all(c == 200 for c in more))),
    ]
    return result, rows


# -- c. distinct cursors --------------------------------------------------------------------


SEED = """
from chatsite.rooms.models import Message, Room
room, _ = Room.objects.get_or_create(slug={room!r}, defaults={{"title": "Stall",
    "description": "bench_hostile.py"}})
for i in range(3):
    Message.objects.create(room=room, author="seed", text=f"seed {{i}}")
filler = Room.objects.get(slug={filler!r})
Message.objects.bulk_create([Message(room=filler, author="filler", text=f"filler {{i}}")
                             for i in range({count})], batch_size=1000)
print("NEWEST", Message.objects.order_by("-id").values_list("id", flat=True).first())
"""


def seed_site(env: dict[str, str], count: int) -> int:
    """The room ``ROOM`` with 3 messages, then ``count`` messages elsewhere: every id in
    (its newest, the site's newest] is a valid cursor at which a poll of ``ROOM`` parks."""
    done = subprocess.run([PYTHON, "manage.py", "shell", "-c",
                           SEED.format(room=ROOM, filler=FILLER_ROOM, count=count)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    match = re.search(r"NEWEST (\d+)", done.stdout)
    if done.returncode != 0 or match is None:
        raise BenchError(f"seeding failed:\n{done.stdout}{done.stderr}")
    return int(match.group(1))


def park_distinct(server: ServerProcess, requests: Sequence[bytes], *, batch: int = 500,
                  timeout: float = 300.0) -> tuple[LongPolls, list[float], float]:
    """One connection per request, in batches the server parks before the next; the
    LongPolls (to collect), each request's send time, and seconds it all took."""
    polls = LongPolls(server.port, b"")
    sent_at: list[float] = []
    start = time.monotonic()
    deadline = start + timeout
    base = comet_stats(server.port)["parked"]
    for first in range(0, len(requests), batch):
        for request in requests[first:first + batch]:
            sock = socket.create_connection((HOST, server.port), timeout=10)
            sock.sendall(request)
            sent_at.append(time.perf_counter())
            sock.setblocking(False)
            polls.pending[sock.fileno()] = _Pending(sock)
            polls.epoll.register(sock.fileno(), select.EPOLLIN)
        wait_parked(server, base + min(first + batch, len(requests)),
                    max(1.0, deadline - time.monotonic()))
    return polls, sent_at, time.monotonic() - start


def poll_requests(port: int, cursors: Sequence[int]) -> list[bytes]:
    return [(f"GET /rooms/{ROOM}/updates?after={c} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
             "\r\n").encode() for c in cursors]


def check_room_answers(polls: LongPolls, cursors: Sequence[int], typing: list[str]) -> None:
    for body, cursor in zip(polls.bodies(), cursors, strict=True):
        data = json.loads(body)
        if data["messages"] or data["cursor"] != cursor or data["typing"] != typing:
            raise BenchError(f"the poll at {cursor} answered {body[:300]!r}")


SETTINGS = '''"""{base} (written by bench_hostile.py), and the process's garbage-collection
pauses logged (observation only: bench_hostile.py reads them from the server's log)."""

import gc
import os
import sys
import time

from {base} import *  # noqa: F403

{extra}
_gc_started = [0.0]


def _gc_pause(phase, info):
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    elif (took := time.perf_counter() - _gc_started[0]) >= 0.005:
        print(f"bench-gc gen{{info['generation']}} at {{_gc_started[0]:.4f}} "
              f"took {{took * 1000:.1f}} ms", file=sys.stderr, flush=True)


gc.callbacks.append(_gc_pause)
'''


def write_settings(workdir: Path, name: str, base: str, extra: str = "") -> dict[str, str]:
    """A settings module ``name`` in ``workdir``: ``base`` plus ``extra`` lines, logging
    its GC pauses; the environment that selects it."""
    (workdir / f"{name}.py").write_text(SETTINGS.format(base=base, extra=extra))
    path = os.pathsep.join(p for p in (str(workdir), str(ROOT), os.environ.get("PYTHONPATH"))
                           if p)
    return {"DJANGO_SETTINGS_MODULE": name, "PYTHONPATH": path}


_GC_LINE = re.compile(r"bench-gc gen(\d) at ([\d.]+) took ([\d.]+) ms")
PROBE_PATH = f"/rooms/{ROOM}/messages?before=1"  # a cheap page: one query, nothing found


def gc_pauses(server: ServerProcess) -> list[tuple[int, float, float]]:
    """(generation, start, seconds) of the server's collections of 5 ms or more."""
    text = server.stderr()
    return [(int(g), float(at), float(took) / 1000) for g, at, took in _GC_LINE.findall(text)]


def gc_figures(pauses: list[tuple[int, float, float]], start: float, end: float) -> dict:
    inside = [p for p in pauses if p[1] <= end and p[1] + p[2] >= start]
    return {"collections_5ms_plus": len(inside),
            "full_collections": sum(1 for p in inside if p[0] == 2),
            "longest_ms": max((p[2] for p in inside), default=0.0) * 1000,
            "total_ms": sum(p[2] for p in inside) * 1000}


def gc_row(name: str, fig: dict) -> Row:
    return (f"{name}: server GC pauses >= 5 ms (full), longest",
            f"{fig['collections_5ms_plus']} ({fig['full_collections']}), "
            f"{fig['longest_ms']:.0f} ms", "", "")


def chat_env(workdir: Path, poll_timeout: float) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
           **PRODUCTION_ENV, **UNLIMITED_CHAT_ENV, POLL_TIMEOUT_ENV: repr(poll_timeout),
           "PYTHONUNBUFFERED": "1",
           # chatsite.settings with the poll timeout from the environment.
           **write_settings(workdir, "bench_hostile_chat", "chatsite.settings",
                            f"CHAT_POLL_TIMEOUT = float(os.environ[{POLL_TIMEOUT_ENV!r}])")}
    env.pop("COMET_BROKER", None)  # one process: the in-process hub
    return env


def chat_server(workdir: Path, poll_timeout: float) -> ServerProcess:
    """runcomet on the chat (started by ``with``)."""
    return ServerProcess(runcomet_argv(*ONE_ADDRESS), name="runcomet-cursors",
                         env=chat_env(workdir, poll_timeout))


def bench_cursors(count: int, workdir: Path) -> tuple[dict, list[Row]]:
    env = chat_env(workdir, 25.0)
    status(f"cursors: migrating a fresh database in {workdir}; {count + 100:,} messages")
    manage("migrate", "--noinput", env=env)
    newest = seed_site(env, count + 100)
    cursors = list(range(newest - count + 1, newest + 1))
    result: dict = {"parked": count, "newest": newest, "probe": PROBE_PATH}
    rows: list[Row] = []

    # The signal wave: a long poll timeout, so nothing times out before the signal.
    with chat_server(workdir, 600.0) as server:
        client = Client(server.port)
        code, _ = client.request("GET", f"/rooms/{ROOM}/")
        code2, _ = client.request("POST", f"/rooms/{ROOM}/nick", {"nick": "typist"})
        if code != 200 or code2 != 302:
            raise BenchError(f"room page {code}, choosing a nick {code2}")
        status(f"cursors: parking {count:,} polls at cursors {cursors[0]}..{cursors[-1]}")
        park_from = time.perf_counter()
        polls, _, park_s = park_distinct(server, poll_requests(server.port, cursors))
        try:
            if polls.answered_early():
                raise BenchError("polls were answered before the signal")
            rss = server.rss_kib()
            probe = Probe(server.port, PROBE_PATH, 0.01, keep_alive=True)
            probe.wait_started()
            idle_from = time.perf_counter()
            time.sleep(1.0)
            raw = client.raw_post(f"/rooms/{ROOM}/typing", {})
            status(f"cursors: one typing signal to {count:,} polls")
            with socket.create_connection((HOST, server.port), timeout=30) as sock:
                t0 = time.perf_counter()
                sock.sendall(raw)
                done = polls.collect(timeout=120)
                answer = sock.recv(4096)
            t_all = max(done)
            time.sleep(0.3)
            probe.stop()
            if not answer.startswith(b"HTTP/1.1 204 "):
                raise BenchError(f"typing answered {answer[:200]!r}")
            check_room_answers(polls, cursors, ["typist"])
        finally:
            polls.close()
        server.check_alive()
        pauses = gc_pauses(server)
    idle = probe.window(idle_from, t0)
    wave = probe.window(t0, t_all)
    gc_park, gc_wave = gc_figures(pauses, park_from, idle_from), gc_figures(pauses, t0, t_all)
    latencies = sorted((t - t0) * 1000 for t in done)
    result["signal"] = {"park_seconds": park_s, "rss_kib_parked": rss,
                        "all_answered_ms": latencies[-1], "first_ms": latencies[0],
                        "p50_ms": percentile(latencies, 50), "probe_idle": idle,
                        "probe_wave": wave, "gc_parking": gc_park, "gc_wave": gc_wave}
    rows += [
        (f"cursors: park {count:,} polls at distinct cursors", f"{park_s:.1f} s", "", ""),
        gc_row("cursors: while parking", gc_park),
        (f"cursors: typing signal -> all {count:,} answered", f"{latencies[-1]:.0f} ms "
         f"(first {latencies[0]:.0f})", "", verdict(len(done) == count)),
        *probe_rows(f"cursors, idle: GET {PROBE_PATH} /10 ms", idle, targets=False),
        *probe_rows("cursors, signal wave", wave, targets=True),
        gc_row("cursors, signal wave", gc_wave),
    ]

    # The timeout wave: a poll timeout just longer than parking them all takes.  The
    # polls time out in the order and at the rate they were parked.
    timeout = float(math.ceil(park_s * 1.5) + 5)
    with chat_server(workdir, timeout) as server:
        status(f"cursors: parking {count:,} polls with a {timeout:g} s poll timeout")
        polls, sent_at, park2_s = park_distinct(server, poll_requests(server.port, cursors))
        try:
            probe = Probe(server.port, PROBE_PATH, 0.01, keep_alive=True)
            probe.wait_started()
            status("cursors: waiting for the timeout wave")
            done = polls.collect(timeout=timeout + park2_s + 60)
            time.sleep(0.3)
            probe.stop()
            check_room_answers(polls, cursors, [])
        finally:
            polls.close()
        server.check_alive()
        pauses = gc_pauses(server)
    wave = probe.window(min(done), max(done))
    gc_wave = gc_figures(pauses, min(done), max(done))
    # From sending a poll to its timeout answer, less the timeout: the time it took to
    # be parked (the server parks a batch of 500 at a time) plus any lateness.
    late = sorted((d - s - timeout) * 1000 for d, s in zip(done, sent_at, strict=True))
    spread = (max(done) - min(done)) * 1000
    result["timeout"] = {"poll_timeout_s": timeout, "park_seconds": park2_s,
                         "answers_spread_ms": spread, "sent_to_answer_minus_timeout_ms": {
                             "min": late[0], "p50": percentile(late, 50), "max": late[-1]},
                         "probe_wave": wave, "gc_wave": gc_wave}
    rows += [
        (f"cursors: {count:,} polls time out ({timeout:g} s), first to last answer",
         f"{spread / 1000:.1f} s (parked over {park2_s:.1f} s)", "", ""),
        *probe_rows("cursors, timeout wave", wave, targets=True),
        gc_row("cursors, timeout wave", gc_wave),
    ]
    return result, rows


# -- d. drain -------------------------------------------------------------------------------


def read_until_closed(polls: LongPolls, timeout: float) -> dict[str, int]:
    """Read every connection until its answer is complete or it closes; the tally."""
    tally = {"complete_200": 0, "other_status": 0, "closed_unanswered": 0, "incomplete": 0}
    last = 0.0
    left = dict(polls.pending)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        for fd, _ in polls.epoll.poll(0.2, maxevents=4096):
            item = left.get(fd)
            if item is None:
                continue
            try:
                data = item.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            item.buf += data
            end = item.buf.find(b"\r\n\r\n")
            if end >= 0 and item.total < 0:
                match = _CONTENT_LENGTH.search(item.buf, 0, end + 2)
                item.total = end + 4 + int(match.group(1)) if match else -2
            finished = item.total >= 0 and len(item.buf) >= item.total
            if finished or not data:
                last = time.perf_counter()
                polls.epoll.unregister(fd)
                del left[fd]
                if finished and item.buf.startswith(b"HTTP/1.1 200 "):
                    tally["complete_200"] += 1
                elif finished:
                    tally["other_status"] += 1
                elif item.buf:
                    tally["incomplete"] += 1
                else:
                    tally["closed_unanswered"] += 1
    tally["no_news"] = len(left)
    tally["last_at"] = last
    return tally


def bench_drain(count: int, workdir: Path) -> tuple[dict, list[Row]]:
    env = write_settings(workdir, "bench_hostile_drain", "tests.serverapp.settings")
    with ServerProcess(runcomet_argv(*ONE_ADDRESS), name="runcomet-drain", env=env) as server:
        port = server.port
        request = (f"GET /wait/drain?after=0&timeout=60 HTTP/1.1\r\n"
                   f"Host: {HOST}:{port}\r\n\r\n")
        polls = LongPolls(port, request.encode())
        try:
            status(f"drain: parking {count:,} long-polls (tests app /wait)")
            park_s = polls.open(count, server=server)
            exited: list[float] = []

            def wait_exit() -> None:
                server.proc.wait()
                exited.append(time.perf_counter())

            waiter = threading.Thread(target=wait_exit, daemon=True)
            status("drain: SIGTERM")
            t0 = time.perf_counter()
            server.proc.send_signal(signal.SIGTERM)
            waiter.start()
            tally = read_until_closed(polls, timeout=30)
            waiter.join(30)
        finally:
            polls.close()
        code = server.proc.returncode
        pauses = gc_pauses(server)
    exit_s = exited[0] - t0 if exited else float("nan")
    answered_s = tally.pop("last_at") - t0
    gc_drain = gc_figures(pauses, t0, t0 + (answered_s if math.isnan(exit_s) else exit_s))
    result = {"parked": count, "park_seconds": park_s, **tally, "exit_code": code,
              "signal_to_last_answer_s": answered_s, "signal_to_exit_s": exit_s,
              "gc_drain": gc_drain}
    rows: list[Row] = [
        (f"drain: complete 200s of {count:,} parked after SIGTERM",
         f"{tally['complete_200']:,}", f"{count:,}", verdict(tally["complete_200"] == count)),
        ("drain: SIGTERM -> last answer read", f"{answered_s:.2f} s", "", ""),
        ("drain: SIGTERM -> exit (exit code)", f"{exit_s:.2f} s ({code})",
         f"<= {TARGET_DRAIN_S:g} s (0)", verdict(exit_s <= TARGET_DRAIN_S and code == 0)),
        gc_row("drain: SIGTERM -> exit", gc_drain),
    ]
    if tally["complete_200"] != count:
        rows.append(("drain: other / cut / unanswered", f"{tally['other_status']} / "
                     f"{tally['incomplete']} / {tally['closed_unanswered'] + tally['no_news']}",
                     "0", "NO"))
    return result, rows


# -- e. churn -------------------------------------------------------------------------------


def reset(sock: socket.socket) -> None:
    """Close with a reset (RST), as a client that vanishes does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def churn_batch(server: ServerProcess, size: int, request: bytes, publish: bytes) -> None:
    """``size`` parked requests with pipelined input: half reset, half answered."""
    port = server.port
    socks: list[socket.socket] = []
    for first in range(0, size, 500):
        for _ in range(min(500, size - first)):
            sock = socket.create_connection((HOST, port), timeout=10)
            sock.sendall(request)
            socks.append(sock)
        wait_parked(server, len(socks), 30)
    half = size // 2
    for sock in socks[:half]:
        reset(sock)
    keep = socks[half:]
    wait_for(lambda: (stats_or_none(port) or {}).get("parked", -1) == len(keep), 30,
             "the reset half to be gone", interval=0.02)
    with socket.create_connection((HOST, port), timeout=30) as pub:
        pub.sendall(publish)
        if _read_answer(pub) != 200:
            raise BenchError("the publish failed")
    # Each kept connection gets the wait's answer, then its pipelined request's, then EOF.
    epoll = select.epoll()
    bufs: dict[int, bytearray] = {}
    by_fd = {}
    for sock in keep:
        sock.setblocking(False)
        epoll.register(sock.fileno(), select.EPOLLIN)
        bufs[sock.fileno()] = bytearray()
        by_fd[sock.fileno()] = sock
    deadline = time.monotonic() + 60
    try:
        while by_fd and time.monotonic() < deadline:
            for fd, _ in epoll.poll(1.0, maxevents=4096):
                try:
                    data = by_fd[fd].recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                bufs[fd] += data
                if not data:
                    epoll.unregister(fd)
                    by_fd.pop(fd).close()
        if by_fd:
            raise BenchError(f"{len(by_fd)} connections not closed after their answers")
    finally:
        epoll.close()
        for sock in by_fd.values():
            sock.close()
    bad = sum(1 for b in bufs.values() if b.count(b"HTTP/1.1 200 ") != 2)
    if bad:
        raise BenchError(f"{bad} connections did not get both answers")
    wait_for(lambda: (stats_or_none(port) or {}).get("connections", -1) <= 1, 30,
             "the connections to close", interval=0.02)


def bench_churn(total: int, batch: int, every: int) -> tuple[dict, list[Row]]:
    argv = wsgi_app_argv("bench.apps:comet", "--no-access-log", *ONE_ADDRESS)
    pad = "p" * 1000
    samples: list[tuple[int, int]] = []
    with ServerProcess(argv, name="comet-churn") as server:
        port = server.port
        request = (f"GET /wait HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n"
                   f"GET /hello HTTP/1.1\r\nHost: {HOST}:{port}\r\nX-Pad: {pad}\r\n"
                   "Connection: close\r\n\r\n").encode()
        publish = (f"POST /publish HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Length: 2\r\n"
                   "Connection: close\r\n\r\nhi").encode()
        # Warm-up: RSS climbs over the first few thousand cycles (the allocator's
        # arenas, the kernel's socket buffers), then stays flat.
        for _ in range(0, CHURN_WARMUP, batch):
            churn_batch(server, batch, request, publish)
        time.sleep(0.2)
        rss0 = server.rss_kib()
        done = 0
        started = time.monotonic()
        while done < total:
            size = min(batch, total - done)
            churn_batch(server, size, request, publish)
            done += size
            if done % every == 0 or done == total:
                time.sleep(0.2)
                samples.append((done, rss_kib(server.pid)))
                status(f"churn: {done:,} parked ({done // 2:,} answered, {done // 2:,} reset); "
                       f"RSS {samples[-1][1]:,} KiB")
        took = time.monotonic() - started
        server.check_alive()
    values = [kib for _, kib in samples]
    first, last, peak = values[0], values[-1], max(values)
    growth = (last - first) / first
    result = {"total": total, "batch": batch, "warmup": CHURN_WARMUP,
              "rss_after_warmup_kib": rss0,
              "samples": samples, "first_kib": first, "last_kib": last, "max_kib": peak,
              "seconds": took}
    rows: list[Row] = [
        (f"churn: RSS after each {every:,} of {total:,} (first / last / max)"
         f", after {CHURN_WARMUP:,} warm-up",
         f"{first:,} / {last:,} / {peak:,} KiB", "flat",
         verdict(growth <= TARGET_RSS_GROWTH)),
        ("churn: RSS growth first -> last", f"{growth:+.1%} ({last - first:+,} KiB)",
         f"<= {TARGET_RSS_GROWTH:.0%}", ""),
    ]
    return result, rows


# -- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: small sizes, a 3 s head timeout and hold")
    parser.add_argument("--only", action="append", default=[],
                        help=f"run only these sections (comma-separated): {', '.join(SECTIONS)}")
    args = parser.parse_args()
    only = [s.strip() for arg in args.only for s in arg.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    run = [s for s in SECTIONS if not only or s in only]
    size = {k: v[1] if args.quick else v[0] for k, v in SIZES.items()}
    limit = raise_fd_limit()
    biggest = max(size["slowloris"], size["cursors"], size["drain"], size["churn_batch"])
    if biggest + 500 > limit:
        parser.error(f"{biggest} connections need more file descriptors than the limit ({limit})")
    started = time.monotonic()
    load = os.getloadavg()[0]
    results: dict = {}
    rows: list[Row] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    try:
        for section in run:
            if section == "slowloris":
                result, more = bench_slowloris(size["slowloris"], size["head_timeout"])
            elif section == "emfile":
                result, more = bench_emfile(size["emfile_clients"], size["emfile_hold"])
            elif section == "cursors":
                result, more = bench_cursors(size["cursors"], workdir)
            elif section == "drain":
                result, more = bench_drain(size["drain"], workdir)
            else:
                result, more = bench_churn(size["churn"], size["churn_batch"],
                                           size["churn_sample"])
            results[section] = result
            rows += more
    except (BenchError, ServerError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"bench_hostile: FAILED in {section}: {exc}", file=sys.stderr)
        if rows:
            print_table("bench_hostile: the sections done before the failure", rows)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(f"hostile clients ({os.cpu_count()} CPUs, load {load:.1f} at start; "
                f"{'quick; ' if args.quick else ''}took {time.monotonic() - started:.0f} s)",
                rows)
    busy_note(load)
    name = "bench_hostile" + ("_quick" if args.quick else "") + \
        ("_" + "_".join(run) if only else "")
    save_results(name, {**results, "quick": args.quick, "loadavg_at_start": load})
    return 0


if __name__ == "__main__":
    sys.exit(main())

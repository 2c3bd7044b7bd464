"""Benchmark of the chat scaled out (issue 4): two runcomet processes on Redis and PostgreSQL.

a. Fan-out across processes: N updates long-polls split evenly over two ``runcomet``
   processes (two ports, as two machines would be), one message posted on ONE of them;
   the time until every poll in both has it, per process too, and RSS per parked poll.
b. Throughput of the pair: pollers re-poll from their cursor as soon as answered (like
   browsers) while a few keep-alive clients post as fast as they can, two per process;
   messages/s committed, whether every poller got every message exactly once, and the
   delivery latency (post sent -> poll has it).

Production-like: ``COMET_BROKER=redis://127.0.0.1:6379/0``, a scratch PostgreSQL database
(created, migrated, dropped), ``DJANGO_DEBUG=0``.  Everything on 127.0.0.1.

Run from the repo root: ``.venv/bin/python bench/bench_scaleout.py [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import resource
import select
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import redis

from bench._common import (
    HOST,
    ONE_ADDRESS,
    BenchError,
    LongPolls,
    ServerError,
    ServerProcess,
    busy_note,
    collect_many,
    percentile,
    print_table,
    raise_fd_limit,
    save_results,
    status,
    verdict,
    wait_parked,
)
from bench.bench_chat import Client, manage, setup_room, updates_request
from tests.helpers.proc import PRODUCTION_ENV, UNLIMITED_CHAT_ENV, runcomet_argv  # noqa: E402  (after sys.path)

TARGET_FANOUT_MS = 250.0  # issue 3's single-process target, kept for two processes
TARGET_KIB_PER_PARKED = 16.0
WARMUP_PARKED = 200
PG_ADMIN_URL = os.environ.get("COMET_BENCH_PG_URL", "postgres://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("COMET_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTERS_PER_PROCESS = 2
# The servers' long-poll timeout: long, so that parking 5,000 polls (several ms each: every
# request opens its own PostgreSQL connection) cannot outlast it, and so that a poll that
# missed its wake-up shows up as missing instead of being rescued by a timeout re-poll.
POLL_TIMEOUT = 120.0
DRAIN_TIMEOUT = 40.0  # after the last post, for every poller to have it
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


# -- set-up -----------------------------------------------------------------------------


@contextlib.contextmanager
def bench_settings():
    """A settings module (in a temporary directory) that is chatsite.settings with
    ``CHAT_POLL_TIMEOUT = POLL_TIMEOUT``; the extra environment that selects it."""
    base = os.environ.get("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
        Path(tmp, "bench_scaleout_settings.py").write_text(
            f"from {base} import *  # noqa: F403\nCHAT_POLL_TIMEOUT = {POLL_TIMEOUT!r}\n")
        path = os.pathsep.join(p for p in (tmp, os.environ.get("PYTHONPATH")) if p)
        yield {"DJANGO_SETTINGS_MODULE": "bench_scaleout_settings", "PYTHONPATH": path}


@contextlib.contextmanager
def scratch_database():
    """A PostgreSQL database of our own, dropped afterwards whatever happens."""
    name = f"comet_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def create_room(client: Client, slug: str) -> int:
    return setup_room(client, slug, note="bench_scaleout.py")


def post_bytes(client: Client, slug: str, text: str, nick: str) -> bytes:
    """A keep-alive POST of one message (bench_chat's raw_post closes the connection)."""
    return client.raw_post(f"/rooms/{slug}/messages", {"text": text, "nick": nick}).replace(
        b"Connection: close\r\n", b"")


def both(fn, *args_per_server):
    """Run ``fn`` for both servers at once (parking 2 x 2,500 one after the other would
    take about as long as the poll timeout)."""
    with ThreadPoolExecutor(max_workers=len(args_per_server)) as pool:
        return list(pool.map(lambda args: fn(*args), args_per_server))


# -- a. fan-out across two processes ----------------------------------------------------


def post_and_collect(client: Client, slug: str, groups: list[LongPolls],
                     text: str) -> tuple[dict, list[list[float]], float]:
    """Post one message on ``client``'s server; (message, completion times per group, t0)."""
    raw = post_bytes(client, slug, text, "bench").replace(
        b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
    with socket.create_connection((HOST, client.port), timeout=30) as sock:
        t0 = time.perf_counter()
        sock.sendall(raw)
        done = collect_many(groups, timeout=60)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 201 "):
        raise BenchError(f"posting answered {answer[:300]!r}")
    client.remember_cookies(head)
    return json.loads(body), done, t0


def check_bodies(groups: list[LongPolls], message: dict) -> None:
    """Every poll, in both processes, got exactly the posted message."""
    for group in groups:
        for body in set(group.bodies()):
            data = json.loads(body)
            if [m["id"] for m in data["messages"]] != [message["id"]] \
                    or data["cursor"] != message["id"]:
                raise BenchError(f"a poll on :{group.port} answered {body[:300]!r}, "
                                 f"expected message {message['id']}")


def bench_fanout(servers: list[ServerProcess], waiters: int, rounds: int) -> dict:
    client = Client(servers[0].port)
    slug = f"fan-{uuid.uuid4().hex[:8]}"  # Redis is shared: a channel no one else uses
    cursor = create_room(client, slug)
    per = waiters // len(servers)

    # Warm-up round on both processes (Django's lazy set-up, the Redis path, PG).
    warm = [LongPolls(s.port, updates_request(s.port, cursor, slug)) for s in servers]
    try:
        both(lambda g, s: g.open(WARMUP_PARKED, server=s), *zip(warm, servers, strict=True))
        message, _, _ = post_and_collect(client, slug, warm, "warm-up")
        check_bodies(warm, message)
    finally:
        for group in warm:
            group.close()
    cursor = message["id"]
    for server in servers:
        wait_parked(server, 0, 5)
    time.sleep(0.5)
    rss_before = [s.rss_kib() for s in servers]

    groups = [LongPolls(s.port, updates_request(s.port, cursor, slug)) for s in servers]
    fanouts: list[dict] = []
    try:
        status(f"parking {waiters} updates long-polls, {per} per process")
        park_s = max(both(lambda g, s: g.open(per, server=s), *zip(groups, servers, strict=True)))
        time.sleep(0.5)
        rss_after = [s.rss_kib() for s in servers]
        for round_no in range(1, rounds + 1):
            if round_no > 1:
                for group in groups:
                    group.request = updates_request(group.port, cursor, slug)
                park_s = max(both(lambda g, s: g.repark(server=s),
                                  *zip(groups, servers, strict=True)))
                time.sleep(0.5)
            early = sum(g.answered_early() for g in groups)
            if early:
                raise BenchError(f"{early} long-polls were answered before the post "
                                 f"(parking took {park_s:.1f}s; poll timeout passed?)")
            status(f"post {round_no}/{rounds} on :{servers[0].port}: one message to "
                   f"{waiters} long-polls on two processes")
            message, done, t0 = post_and_collect(client, slug, groups, f"round {round_no}")
            check_bodies(groups, message)
            cursor = message["id"]
            per_proc = [sorted((t - t0) * 1000 for t in times) for times in done]
            merged = sorted(x for lat in per_proc for x in lat)
            fanouts.append({
                "all_ms": merged[-1], "p50_ms": percentile(merged, 50),
                "p99_ms": percentile(merged, 99), "park_s": round(park_s, 2),
                "per_process": [{"port": s.port, "polls": len(lat), "all_ms": lat[-1],
                                 "first_ms": lat[0], "p50_ms": percentile(lat, 50),
                                 "p99_ms": percentile(lat, 99)}
                                for s, lat in zip(servers, per_proc, strict=True)],
            })
        for server in servers:
            server.check_alive()
    finally:
        for group in groups:
            group.close()
    median = sorted(fanouts, key=lambda f: f["all_ms"])[len(fanouts) // 2]
    return {"waiters": waiters, "per_process": per, "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "kib_per_parked": [(a - b) / per for a, b in zip(rss_after, rss_before, strict=True)],
            "rounds": fanouts, "median": median}


# -- b. throughput while clients re-poll ------------------------------------------------


class _Conn:
    """One keep-alive connection of the throughput loop: a poller or a poster."""

    __slots__ = ("sock", "port", "buf", "total", "cursor", "ids", "times", "sent_at",
                 "poster", "request", "done")

    def __init__(self, port: int, *, poster: Client | None = None) -> None:
        self.port = port
        self.poster = poster
        self.buf = bytearray()
        self.total = -1
        self.cursor = 0
        self.ids = array("q")  # message ids received, in order (pollers)
        self.times = array("d")  # perf_counter when each was read
        self.sent_at = 0.0
        self.request = b""
        self.done = False
        self.sock = self._connect()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((HOST, self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def send(self, request: bytes) -> None:
        self.request, self.buf, self.total = request, bytearray(), -1
        self.sent_at = time.perf_counter()
        self.sock.setblocking(True)
        self.sock.sendall(request)
        self.sock.setblocking(False)

    def feed(self) -> bytes | None:
        """Read; the complete answer (head + body) when there is one, else None."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return None
        if not data:
            raise ConnectionResetError(errno.ECONNRESET, "closed by the server")
        self.buf += data
        if self.total < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return None
            match = _CONTENT_LENGTH.search(self.buf, 0, end + 2)
            if match is None:
                raise BenchError(f"answer without Content-Length: {bytes(self.buf[:300])!r}")
            self.total = end + 4 + int(match.group(1))
        if len(self.buf) < self.total:
            return None
        if len(self.buf) > self.total:
            raise BenchError("more bytes than one answer (pipelining is not used)")
        return bytes(self.buf)


class Throughput:
    """Pollers and posters on one epoll: pollers re-poll from their cursor at once; each
    poster sends its next message as soon as the previous one is answered (201)."""

    def __init__(self, slug: str, servers: list[ServerProcess], pollers: int,
                 posters: list[Client], cursor: int) -> None:
        self.slug, self.servers, self.start_cursor = slug, servers, cursor
        self.epoll = select.epoll()
        self.conns: dict[int, _Conn] = {}
        self.pollers: list[_Conn] = []
        self.posters: list[_Conn] = []
        self.posted: dict[int, float] = {}  # message id -> perf_counter the POST was sent
        self.post_ms = array("d")
        self.reconnects = 0
        self.answers = 0
        self.empty_answers = 0
        self.bad_answers: list[str] = []
        self._park(pollers)
        for n, client in enumerate(posters):
            self._add(_Conn(client.port, poster=client))
            self.posters[-1].cursor = n  # poster number, for the message texts

    def _add(self, conn: _Conn) -> None:
        (self.posters if conn.poster else self.pollers).append(conn)
        self.conns[conn.sock.fileno()] = conn
        self.epoll.register(conn.sock.fileno(), select.EPOLLIN)

    def _park(self, count: int, batch: int = 250) -> None:
        per = count // len(self.servers)
        for server in self.servers:
            opened = 0
            while opened < per:
                for _ in range(min(batch, per - opened)):
                    conn = _Conn(server.port)
                    conn.cursor = self.start_cursor
                    self._add(conn)
                    conn.send(self._poll_request(conn))
                opened = min(per, opened + batch)
                wait_parked(server, opened, 60)

    def _poll_request(self, conn: _Conn) -> bytes:
        return updates_request(conn.port, conn.cursor, self.slug)

    def _post(self, conn: _Conn, seq: int) -> None:
        assert conn.poster is not None
        conn.send(post_bytes(conn.poster, self.slug, f"p{conn.cursor} #{seq}",
                             f"poster{conn.cursor}"))

    def _reconnect(self, conn: _Conn) -> None:
        """The server closed a kept-alive connection: open another, send the request again."""
        self.reconnects += 1
        if self.reconnects > 100:
            raise BenchError("more than 100 connections closed by the servers")
        fd = conn.sock.fileno()
        self.epoll.unregister(fd)
        del self.conns[fd]
        conn.sock.close()
        conn.sock = conn._connect()
        self.conns[conn.sock.fileno()] = conn
        self.epoll.register(conn.sock.fileno(), select.EPOLLIN)
        conn.send(conn.request)

    def run(self, seconds: float) -> dict:
        """Post for ``seconds``, then wait until every poller has the last message."""
        seq = 0
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t_start = time.perf_counter()
        stop_at = t_start + seconds
        for conn in self.posters:
            seq += 1
            self._post(conn, seq)
        posting = len(self.posters)
        t_last_post = t_start
        last_id = None  # known once posting has stopped
        waiting = len(self.pollers)  # pollers not yet at last_id
        hard_deadline = stop_at + 30 + DRAIN_TIMEOUT
        while waiting:
            now = time.perf_counter()
            if now > hard_deadline:
                break
            if last_id is not None and now > t_last_post + DRAIN_TIMEOUT:
                break
            for fd, _ in self.epoll.poll(1.0, maxevents=4096):
                conn = self.conns.get(fd)
                if conn is None or conn.done:
                    continue
                try:
                    answer = conn.feed()
                except (ConnectionResetError, BrokenPipeError):
                    self._reconnect(conn)
                    continue
                if answer is None:
                    continue
                now = time.perf_counter()
                head, _, body = answer.partition(b"\r\n\r\n")
                if conn.poster is not None:
                    if not head.startswith(b"HTTP/1.1 201 "):
                        raise BenchError(f"posting answered {answer[:300]!r}")
                    self.posted[json.loads(body)["id"]] = conn.sent_at
                    self.post_ms.append((now - conn.sent_at) * 1000)
                    if now < stop_at:
                        seq += 1
                        self._post(conn, seq)
                        continue
                    conn.done = True
                    posting -= 1
                    if posting == 0:
                        t_last_post = now
                        last_id = max(self.posted)
                        waiting = sum(1 for p in self.pollers if p.cursor < last_id)
                        for p in self.pollers:
                            p.done = p.cursor >= last_id
                    continue
                self.answers += 1
                if not head.startswith(b"HTTP/1.1 200 "):
                    self.bad_answers.append(answer[:200].decode("latin-1"))
                    if len(self.bad_answers) > 50:
                        raise BenchError(f"polls answered errors: {self.bad_answers[:3]}")
                else:
                    data = json.loads(body)
                    if not data["messages"]:
                        self.empty_answers += 1
                    for m in data["messages"]:
                        conn.ids.append(m["id"])
                        conn.times.append(now)
                    conn.cursor = max(conn.cursor, data["cursor"])
                if last_id is not None and conn.cursor >= last_id:
                    conn.done = True
                    waiting -= 1
                    continue
                conn.send(self._poll_request(conn))
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        if last_id is None:
            raise BenchError(f"posting did not stop within {hard_deadline - t_start:.0f}s")
        return {
            "post_s": t_last_post - t_start,
            "drain_s": time.perf_counter() - t_last_post,
            "client_cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
            "stragglers": waiting,
        }

    def check(self) -> dict:
        """Exactly-once delivery per poller and the delivery latencies."""
        want = sorted(self.posted)
        want_set = set(want)
        complete = duplicates = missing = extra = out_of_order = 0
        latencies = array("d")
        for conn in self.pollers:
            ids = list(conn.ids)
            got = set(ids)
            duplicates += len(ids) - len(got)
            missing += len(want_set - got)
            extra += len(got - want_set)
            out_of_order += any(b <= a for a, b in zip(ids, ids[1:], strict=False))
            complete += ids == want
            posted = self.posted
            latencies.extend((t - posted[i]) * 1000
                             for i, t in zip(conn.ids, conn.times, strict=True) if i in posted)
        lat = sorted(latencies)
        post_ms = sorted(self.post_ms)
        return {"messages": len(want), "pollers": len(self.pollers),
                "complete_pollers": complete, "duplicates": duplicates, "missing": missing,
                "unexpected": extra, "out_of_order_pollers": out_of_order,
                "deliveries": len(lat), "answers": self.answers,
                "empty_answers": self.empty_answers, "bad_answers": len(self.bad_answers),
                "reconnects": self.reconnects,
                "latency_p50_ms": percentile(lat, 50), "latency_p99_ms": percentile(lat, 99),
                "latency_max_ms": lat[-1] if lat else float("nan"),
                "post_p50_ms": percentile(post_ms, 50), "post_p99_ms": percentile(post_ms, 99)}

    def close(self) -> None:
        for conn in self.conns.values():
            with contextlib.suppress(OSError):
                conn.sock.close()
        self.conns.clear()
        self.epoll.close()


def count_stored(db_url: str, slug: str, after: int) -> int:
    with psycopg.connect(db_url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM rooms_message m JOIN rooms_room r "
                           "ON r.id = m.room_id WHERE r.slug = %s AND m.id > %s",
                           (slug, after)).fetchone()
    assert row is not None
    return int(row[0])


def bench_throughput(servers: list[ServerProcess], db_url: str, pollers: int,
                     seconds: float) -> dict:
    slug = f"tp-{uuid.uuid4().hex[:8]}"
    cursor = create_room(Client(servers[0].port), slug)
    posters = []
    for n in range(POSTERS_PER_PROCESS * len(servers)):
        client = Client(servers[n % len(servers)].port)
        code, _ = client.request("GET", "/")
        code2, body = client.request("POST", f"/rooms/{slug}/messages",
                                     {"text": "hello", "nick": f"poster{n}"})
        if code != 200 or code2 != 201 or "sessionid" not in client.cookies:
            raise BenchError(f"poster set-up answered {code}/{code2}: {body[:200]!r}")
        cursor = max(cursor, json.loads(body)["id"])
        posters.append(client)
    status(f"throughput: {pollers} re-polling clients, {len(posters)} posters, {seconds:g}s")
    loop = Throughput(slug, servers, pollers, posters, cursor)
    try:
        timing = loop.run(seconds)
        result = {**timing, **loop.check()}
    finally:
        loop.close()
    for server in servers:
        server.check_alive()
    result["stored"] = count_stored(db_url, slug, cursor)
    result["per_second"] = result["messages"] / result["post_s"]
    result["posters"] = len(posters)
    result["seconds"] = seconds
    return result


# -- main -------------------------------------------------------------------------------


def run(waiters: int, rounds: int, pollers: int, seconds: float) -> dict:
    if not redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping():
        raise BenchError(f"Redis at {REDIS_URL} did not answer PING")
    with scratch_database() as db_url, bench_settings() as settings_env:
        env = {**os.environ, "DATABASE_URL": db_url, "COMET_BROKER": REDIS_URL,
               **PRODUCTION_ENV, **UNLIMITED_CHAT_ENV, "PYTHONUNBUFFERED": "1",
               **settings_env}
        status(f"migrating scratch database {db_url.rsplit('/', 1)[-1]}")
        manage("migrate", "--noinput", env=env)
        servers: list[ServerProcess] = []
        try:
            for name in ("A", "B"):
                servers.append(ServerProcess(runcomet_argv("--no-access-log", *ONE_ADDRESS),
                                             name=f"runcomet-{name}", env=env))
                servers[-1].start()
            fanout = bench_fanout(servers, waiters, rounds)
            throughput = bench_throughput(servers, db_url, pollers, seconds)
        finally:
            for server in servers:
                server.close()
    return {"fanout": fanout, "throughput": throughput}


def table(result: dict, started: float, load: float, quick: bool) -> None:
    fan, tp = result["fanout"], result["throughput"]
    med = fan["median"]
    per, waiters = fan["per_process"], fan["waiters"]
    rows = []
    for i, name in enumerate(("A (posted to)", "B (other)")):
        kib = fan["kib_per_parked"][i]
        rows.append((f"RSS {name}: warm / {per:,} parked",
                     f"{fan['rss_before_kib'][i]:,} / {fan['rss_after_kib'][i]:,} KiB", "", ""))
        rows.append((f"RSS per parked long-poll, {name[0]}", f"{kib:.2f} KiB",
                     f"<= {TARGET_KIB_PER_PARKED:g} KiB", verdict(kib <= TARGET_KIB_PER_PARKED)))
    rows += [
        (f"post on A -> all {waiters:,} polls answered (median)", f"{med['all_ms']:.0f} ms",
         f"<= {TARGET_FANOUT_MS:g} ms (issue 3, 1 proc)",
         verdict(med["all_ms"] <= TARGET_FANOUT_MS)),
        ("per-poll latency p50 / p99 (median round)",
         f"{med['p50_ms']:.0f} / {med['p99_ms']:.0f} ms", "", ""),
    ]
    for i, name in enumerate(("A", "B")):
        p = med["per_process"][i]
        rows.append((f"  {name}: {p['polls']:,} polls first / p50 / p99 / all",
                     f"{p['first_ms']:.0f} / {p['p50_ms']:.0f} / {p['p99_ms']:.0f} / "
                     f"{p['all_ms']:.0f} ms", "", ""))
    rows.append((f"time to park {waiters:,} (first round)",
                 f"{fan['rounds'][0]['park_s']:.1f} s", "", ""))
    if len(fan["rounds"]) > 1:
        each = ", ".join(f"{f['all_ms']:.0f}" for f in fan["rounds"])
        rows.append(("post -> all answered, each round", f"{each} ms", "", ""))
    print_table(f"scale-out fan-out (2 x runcomet, Redis broker, PostgreSQL, DEBUG off; "
                f"{os.cpu_count()} CPUs, load {load:.1f} at start)", rows)

    exact = (tp["complete_pollers"] == tp["pollers"] and not tp["duplicates"]
             and not tp["missing"] and not tp["unexpected"] and not tp["out_of_order_pollers"])
    rows = [
        (f"messages committed in {tp['post_s']:.1f} s ({tp['posters']} posters, "
         f"{tp['seconds']:g} s + in-flight)",
         f"{tp['messages']:,} (DB: {tp['stored']:,})", "= posted",
         verdict(tp["stored"] == tp["messages"])),
        ("messages/s committed by the pair", f"{tp['per_second']:.1f}", "", ""),
        ("post answer time p50 / p99", f"{tp['post_p50_ms']:.0f} / {tp['post_p99_ms']:.0f} ms",
         "", ""),
        ("pollers with every message exactly once, in order",
         f"{tp['complete_pollers']:,} of {tp['pollers']:,}", "all", verdict(exact)),
        ("  missing / duplicate / unexpected deliveries",
         f"{tp['missing']} / {tp['duplicates']} / {tp['unexpected']}", "0 / 0 / 0",
         verdict(not (tp["missing"] or tp["duplicates"] or tp["unexpected"]))),
        ("deliveries (poller x message)", f"{tp['deliveries']:,}", "", ""),
        ("delivery latency p50 / p99 / max",
         f"{tp['latency_p50_ms']:.0f} / {tp['latency_p99_ms']:.0f} / "
         f"{tp['latency_max_ms']:.0f} ms", "", ""),
        ("poll answers (empty: presence/timeout)",
         f"{tp['answers']:,} ({tp['empty_answers']:,})", "", ""),
        ("error answers / reconnects", f"{tp['bad_answers']} / {tp['reconnects']}", "0 / 0",
         verdict(not tp["bad_answers"])),
        ("last post -> every poller has it", f"{tp['drain_s'] * 1000:.0f} ms", "", ""),
        ("bench client CPU (shares the machine)",
         f"{tp['client_cpu_s']:.2f} s in {tp['post_s'] + tp['drain_s']:.1f} s", "", ""),
    ]
    print_table(f"scale-out throughput ({tp['pollers']:,} re-polling clients, "
                f"{tp['pollers'] // 2} per process; {'quick; ' if quick else ''}took "
                f"{time.monotonic() - started:.0f} s in all)", rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1,000 waiters, 1 round, 200 pollers for 3 s")
    parser.add_argument("--waiters", type=int, default=None,
                        help="fan-out long-polls over both processes (default 5000)")
    parser.add_argument("--rounds", type=int, default=None, help="fan-out posts (default 3)")
    parser.add_argument("--pollers", type=int, default=None,
                        help="re-polling clients in the throughput run (default 1000)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds of posting in the throughput run (default 10)")
    args = parser.parse_args()
    waiters = args.waiters or (1000 if args.quick else 5000)
    rounds = args.rounds or (1 if args.quick else 3)
    pollers = args.pollers or (200 if args.quick else 1000)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    limit = raise_fd_limit()
    if max(waiters, pollers) + 2 * WARMUP_PARKED + 200 > limit:
        parser.error(f"{max(waiters, pollers)} connections need more file descriptors than "
                     f"the limit ({limit})")
    started = time.monotonic()
    load = os.getloadavg()[0]
    try:
        result = run(waiters, rounds, pollers, seconds)
    except (BenchError, ServerError, OSError, subprocess.TimeoutExpired, psycopg.Error,
            redis.RedisError) as exc:
        print(f"bench_scaleout: FAILED: {exc}", file=sys.stderr)
        return 1
    table(result, started, load, args.quick)
    busy_note(load)
    save_results("bench_scaleout", {**result, "quick": args.quick, "loadavg_at_start": load,
                                    "took_s": time.monotonic() - started})
    return 0


if __name__ == "__main__":
    sys.exit(main())

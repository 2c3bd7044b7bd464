"""Helpers shared by the benchmark scripts: wrk, stats, tables, and a one-process epoll
client that parks thousands of long-polls and times their answers. Servers are child
processes of the tests' harness (``tests.helpers.proc.ServerProcess``: started with
``--ready-fd``, stopped by SIGTERM, logs in a temporary directory).

Everything talks to 127.0.0.1 only; every wait has a deadline so a broken server
makes a script fail fast instead of hanging.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.helpers.proc import ServerError, ServerProcess
from tests.helpers.proc import rss_kib as rss_kib  # re-exported for the bench scripts

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
HOST = "127.0.0.1"
RESULTS = ROOT / "bench" / "results"
# The benches' thousands of simulated clients all come from 127.0.0.1: no per-address cap.
ONE_ADDRESS = ("--max-connections-per-client", "0")


class BenchError(RuntimeError):
    """The benchmark could not be measured (server died, stalled, answered wrongly)."""


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard one; servers we spawn inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 10.0,
             headers: dict[str, str] | None = None) -> tuple[int, bytes, http.client.HTTPResponse]:
    """One GET on a fresh connection (status, body, response for headers)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp
    finally:
        conn.close()


def comet_stats(port: int) -> dict:
    status, body, _ = http_get(port, "/_comet/stats")
    if status != 200:
        raise BenchError(f"/_comet/stats answered {status}")
    return json.loads(body)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/<pid>/stat; 10 ms ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_parked(server: ServerProcess, expected: int, timeout: float) -> dict:
    """Poll the stats until ``parked`` reaches ``expected``; the last stats."""
    try:
        return server.wait_stats(lambda s: s["parked"] >= expected, timeout,
                                 message=f"{expected} parked", interval=0.05)
    except ServerError:
        raise
    except AssertionError as exc:
        raise BenchError(str(exc)) from None


_RPS = re.compile(rb"Requests/sec:\s+([\d.]+)")
_LATENCY = re.compile(rb"Latency\s+([\d.]+)(us|ms|s)\b")
_UNIT_MS = {b"us": 0.001, b"ms": 1.0, b"s": 1000.0}


def wrk(url: str, *, seconds: float, connections: int = 50, threads: int = 1,
        script: Path | None = None) -> dict:
    """Run wrk (with a Lua ``script`` if given); requests/s, mean latency and the error
    lines it printed."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            *(["-s", str(script)] if script else []), url]
    out = subprocess.run(argv, capture_output=True, timeout=seconds + 30, check=False).stdout
    match = _RPS.search(out)
    if match is None:
        raise BenchError(f"wrk printed no Requests/sec:\n{out.decode(errors='replace')}")
    latency = _LATENCY.search(out)
    errors = [line.strip().decode() for line in out.splitlines()
              if b"Socket errors" in line or b"Non-2xx" in line]
    return {
        "rps": float(match.group(1)),
        "latency_ms": float(latency.group(1)) * _UNIT_MS[latency.group(2)] if latency else None,
        "errors": errors,
    }


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class _Pending:
    """One parked request's socket and the bytes of its answer so far."""

    __slots__ = ("sock", "buf", "total", "done_at")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.total = -1
        self.done_at = 0.0


class LongPolls:
    """N idle-until-answered HTTP/1.1 requests from one process, read through epoll.

    ``open`` connects in batches no larger than the server's accept backlog and waits
    for the server to take each batch (so no SYN is dropped and retried a second
    later); ``collect`` reads every answer and notes when each one is complete.
    """

    def __init__(self, port: int, request: bytes) -> None:
        self.port = port
        self.request = request
        self.pending: dict[int, _Pending] = {}
        self.epoll = select.epoll()

    def open(self, count: int, *, server: ServerProcess, already_parked: int = 0,
             batch: int = 500, timeout: float = 120.0) -> float:
        """Open ``count`` connections, each sending ``request``; seconds it took."""
        start = time.monotonic()
        deadline = start + timeout
        opened = 0
        while opened < count:
            n = min(batch, count - opened)
            for _ in range(n):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.settimeout(10)
                sock.connect((HOST, self.port))
                sock.sendall(self.request)
                sock.setblocking(False)
                self.pending[sock.fileno()] = _Pending(sock)
                self.epoll.register(sock.fileno(), select.EPOLLIN)
            opened += n
            wait_parked(server, already_parked + opened, max(1.0, deadline - time.monotonic()))
        return time.monotonic() - start

    def repark(self, *, server: ServerProcess, already_parked: int = 0, batch: int = 500,
               timeout: float = 120.0) -> float:
        """Send ``request`` again on every (kept-alive) connection, in batches like
        ``open``; seconds it took."""
        start = time.monotonic()
        deadline = start + timeout
        items = list(self.pending.items())
        for first in range(0, len(items), batch):
            for fd, item in items[first:first + batch]:
                item.buf.clear()
                item.total, item.done_at = -1, 0.0
                item.sock.send(self.request)
                self.epoll.register(fd, select.EPOLLIN)
            wait_parked(server, already_parked + min(first + batch, len(items)),
                        max(1.0, deadline - time.monotonic()))
        return time.monotonic() - start

    def answered_early(self) -> int:
        """How many parked requests already have something to read (they should not)."""
        return len(self.epoll.poll(0))

    def collect(self, timeout: float) -> list[float]:
        """Read until every answer is complete; ``time.perf_counter()`` of each completion."""
        deadline = time.monotonic() + timeout
        left = len(self.pending)
        pending = self.pending
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise BenchError(f"{left} of {len(pending)} answers incomplete after {timeout}s")
            for fd, _ in self.epoll.poll(min(wait, 1.0), maxevents=4096):
                left -= self._read(fd)
        return [item.done_at for item in pending.values()]

    def _read(self, fd: int) -> bool:
        """Read what ``fd`` has; True when that completed its answer."""
        item = self.pending[fd]
        try:
            data = item.sock.recv(65536)
        except BlockingIOError:
            return False
        if not data:
            raise BenchError("the server closed a connection before answering")
        item.buf += data
        if item.total < 0:
            end = item.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            if not item.buf.startswith(b"HTTP/1.1 200 "):
                raise BenchError(f"unexpected answer: {bytes(item.buf[:200])!r}")
            match = _CONTENT_LENGTH.search(item.buf, 0, end + 2)
            if match is None:
                head = bytes(item.buf[:300])
                raise BenchError(f"answer without Content-Length: {head!r}")
            item.total = end + 4 + int(match.group(1))
        if len(item.buf) >= item.total:
            item.done_at = time.perf_counter()
            self.epoll.unregister(fd)
            return True
        return False

    def unanswered(self) -> int:
        return sum(1 for item in self.pending.values() if not item.done_at)

    def bodies(self) -> Iterator[bytes]:
        for item in self.pending.values():
            yield bytes(item.buf[item.buf.find(b"\r\n\r\n") + 4:])

    def close(self) -> None:
        for item in self.pending.values():
            with contextlib.suppress(OSError):
                item.sock.close()
        self.pending.clear()
        self.epoll.close()


def collect_many(groups: Sequence[LongPolls], timeout: float) -> list[list[float]]:
    """``collect`` of several clients (one per server) in one loop, so no server's answers
    wait behind another's: an epoll over their epolls."""
    deadline = time.monotonic() + timeout
    outer = select.epoll()
    try:
        by_fd = {g.epoll.fileno(): g for g in groups}
        for fd in by_fd:
            outer.register(fd, select.EPOLLIN)
        left = {fd: g.unanswered() for fd, g in by_fd.items()}
        while any(left.values()):
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise BenchError(f"{sum(left.values())} of {sum(len(g.pending) for g in groups)}"
                                 f" answers incomplete after {timeout}s")
            for outer_fd, _ in outer.poll(min(wait, 1.0)):
                group = by_fd[outer_fd]
                for fd, _ in group.epoll.poll(0, maxevents=4096):
                    left[outer_fd] -= group._read(fd)
    finally:
        outer.close()
    return [[item.done_at for item in g.pending.values()] for g in groups]


def print_table(title: str, rows: Sequence[tuple[str, str, str, str]]) -> None:
    """Rows of (figure, value, target, verdict) as aligned columns."""
    header = ("figure", "value", "target", "ok?")
    widths = [max(len(r[i]) for r in (*rows, header)) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}")
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print(f"{row[0].ljust(widths[0])}  {row[1].rjust(widths[1])}  "
              f"{row[2].ljust(widths[2])}  {row[3].ljust(widths[3])}")
    print(line, flush=True)


def busy_note(load_at_start: float) -> None:
    """Say so when other work shared the CPUs: the figures are then pessimistic."""
    load_now = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    if load_at_start > cpus / 2:
        print(f"note: the machine was busy (1-min load {load_at_start:.1f} before the bench "
              f"started, {load_now:.1f} at its end, {cpus} CPUs): other "
              "processes competed for the CPUs, so times are pessimistic; rerun on an "
              "idle machine for reference figures.", flush=True)


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("yes" if ok else "NO")


def save_results(name: str, data: dict) -> Path:
    """Write the figures as JSON under bench/results/ (git-ignored) for later comparison."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def status(message: str) -> None:
    """Progress on stderr, so the table on stdout stays clean."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

"""Event streams against long-polling, from one server process (issue 11's figures).

a. deliveries/s and server CPU per delivery to N open streams in one room, a
   closed-loop publisher (each message published once every stream has the one
   before), every client checking it got every message once, in order;
b. the same for N long-polls that re-poll from their cursor after every answer;
c. latency of one message to all N streams (first / p50 / p99 / last);
d. RSS per open stream;
e. one slow client (it never reads) among the streams: the others' p99 latency with
   and without it, and whether the server cut it at ``--max-stream-buffer``.

With ``--app plain`` (the default) the server serves ``bench.apps:comet`` (plain WSGI,
no Django: the figures are the server's); with ``--app chat`` it is the chat site on
runcomet (a fresh SQLite database): streams are ``/rooms/<slug>/events``, long-polls
``/rooms/<slug>/updates`` (each answer a Django request), messages are posted through
the HTTP API.  Clients are several processes (one Python process parses about 100,000
events/s), each holding raw sockets in an epoll and finding ``id:`` lines with a
regular expression; the CPU figure is the server's own (``/proc/<pid>/stat``), so a
client-bound run shows fewer deliveries/s but an honest cost per delivery.

Run from the repo root: ``.venv/bin/python bench/bench_sse.py [--streams 1000,10000]
[--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402  (after the sys.path line)
    HOST,
    ONE_ADDRESS,
    BenchError,
    ServerError,
    ServerProcess,
    busy_note,
    cpu_seconds,
    percentile,
    print_table,
    raise_fd_limit,
    save_results,
    verdict,
)
from bench.bench_chat import Client as ChatClient  # noqa: E402
from bench.bench_chat import manage, setup_room  # noqa: E402
from tests.helpers.proc import (  # noqa: E402
    PRODUCTION_ENV,
    UNLIMITED_CHAT_ENV,  # the chat's rate limits are for people; a bench posts hundreds
    runcomet_argv,
    wsgi_app_argv,
)

TARGET_DELIVERIES = 100_000  # per second, per process
TARGET_CPU_US = 10.0  # server CPU per delivery
TARGET_RATIO = 20.0  # streams against re-polling long-polls
TARGET_LAST_MS = 150.0  # one message to all 10,000 streams
TARGET_KIB_PER_STREAM = 8.0
WINDOW = 8  # messages in flight in the second run (a busy room: batches coalesce)
# The slow client: the kernel takes about 3 MiB for a socket that is not read before
# the server holds anything, and the server 1 MiB more: 80 messages of 64 KiB.
SLOW_MESSAGE = 65536
SLOW_MESSAGES = 80
_ID = re.compile(rb"id: (\d+)\n")  # a stream's resume points (plain and chat)
_POLL_ID = {"plain": _ID, "chat": re.compile(rb'"id":(\d+)')}  # in a long-poll answer
_LENGTH = re.compile(rb"content-length: (\d+)\r\n", re.IGNORECASE)


# -- what is measured ---------------------------------------------------------------------


@dataclass(frozen=True)
class App:
    """The server under test: its paths, and how a message is published."""

    name: str
    stream_path: str
    poll_path: str
    publish_path: str
    form: bool  # publish with a form post (CSRF, the chat) or a raw body


PLAIN = App("plain", "/events", "/poll", "/publish", form=False)
ROOM = "bench-sse"
CHAT = App("chat", f"/rooms/{ROOM}/events", f"/rooms/{ROOM}/updates",
           f"/rooms/{ROOM}/messages", form=True)


# -- the client processes ----------------------------------------------------------------


@dataclass
class _Conn:
    sock: socket.socket
    last: int = 0  # the last id received, in order
    tail: bytes = b""  # an id line cut by a read boundary (SSE), or the answer so far
    length: int = -1  # poll mode: the whole answer's length once the head is in


@dataclass
class _Client:
    """One client process's connections, read through epoll."""

    port: int
    app: App
    mode: str  # "sse" or "poll"
    start: int  # the cursor the connections start from (the newest message)
    probes: range  # ids whose arrival times are noted
    conns: dict[int, _Conn] = field(default_factory=dict)
    slow: list[socket.socket] = field(default_factory=list)  # never read
    reached: dict[int, int] = field(default_factory=dict)  # id -> connections past it
    arrivals: dict[int, list[float]] = field(default_factory=dict)
    errors: int = 0
    done: int = 0  # every connection has this id

    def request(self, after: int) -> bytes:
        path = self.app.stream_path if self.mode == "sse" else self.app.poll_path
        return f"GET {path}?after={after} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()

    def open(self, count: int, epoll: select.epoll, slow: bool = False) -> None:
        for _ in range(count):
            sock = socket.socket()
            if slow:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((HOST, self.port))
            sock.sendall(self.request(self.start))
            sock.setblocking(False)
            if slow:
                self.slow.append(sock)
            else:
                self.conns[sock.fileno()] = self.new(sock)
                epoll.register(sock.fileno(), select.EPOLLIN)

    def new(self, sock: socket.socket) -> _Conn:
        return _Conn(sock, last=self.start)

    def got(self, conn: _Conn, ids: list[bytes]) -> None:
        now = time.perf_counter()
        for raw in ids:
            cursor = int(raw)
            if cursor != conn.last + 1:
                self.errors += 1  # a duplicate or a gap
            conn.last = max(conn.last, cursor)
            if cursor in self.probes:
                self.arrivals.setdefault(cursor, []).append(now)
            count = self.reached[cursor] = self.reached.get(cursor, 0) + 1
            if count == len(self.conns) and cursor > self.done:
                self.done = cursor
                del self.reached[cursor]

    def read(self, fd: int) -> None:
        conn = self.conns[fd]
        try:
            data = conn.sock.recv(262144)
        except BlockingIOError:
            return
        if not data:
            raise BenchError("the server closed a stream")
        if self.mode == "sse":
            text = conn.tail + data
            ids = _ID.findall(text)
            # An id line counts once its newline is in: keep the unfinished last line.
            cut = text.rfind(b"\n")
            conn.tail = text[cut + 1:][-24:] if cut >= 0 else text[-24:]
            if ids:
                self.got(conn, ids)
            return
        text = conn.tail + data
        if conn.length < 0:
            end = text.find(b"\r\n\r\n")
            if end < 0:
                conn.tail = text
                return
            match = _LENGTH.search(text, 0, end + 2)
            if match is None or not text.startswith(b"HTTP/1.1 200"):
                raise BenchError(f"unexpected answer {text[:120]!r}")
            conn.length = end + 4 + int(match.group(1))
        if len(text) < conn.length:
            conn.tail = text
            return
        answer, conn.tail, conn.length = text[:conn.length], text[conn.length:], -1
        ids = _POLL_ID[self.app.name].findall(answer)
        if ids:
            self.got(conn, ids)
        conn.sock.send(self.request(conn.last))


def client_main(control: Connection, port: int, app: App, mode: str, start: int, count: int,
                slow: int, probes: range) -> None:
    """A client process: open ``count`` connections (and ``slow`` that never read)
    from cursor ``start``, then read, telling the parent each id every connection has."""
    client = _Client(port, app, mode, start, probes)
    epoll = select.epoll()
    try:
        client.open(count, epoll)
        for _ in range(slow):
            client.open(1, epoll, slow=True)
        control.send(("open", count))
        epoll.register(control.fileno(), select.EPOLLIN)
        told = 0
        while True:
            for fd, _ in epoll.poll(1.0, maxevents=4096):
                if fd == control.fileno():
                    control.recv()
                    control.send(("result", client.errors, client.arrivals))
                    return
                client.read(fd)
            if client.done > told:
                told = client.done
                control.send(("done", told))
    except BenchError as exc:
        control.send(("error", str(exc)))
    finally:
        for sock in [c.sock for c in client.conns.values()] + client.slow:
            with contextlib.suppress(OSError):
                sock.close()


class Clients:
    """``processes`` client processes sharing ``count`` connections."""

    def __init__(self, port: int, app: App, mode: str, start: int, count: int,
                 processes: int, probes: range = range(0), slow: int = 0) -> None:
        self.count = count
        ctx = mp.get_context("fork")
        self.pipes: list[Connection] = []
        self.procs = []
        share = [count // processes + (i < count % processes) for i in range(processes)]
        for i, n in enumerate(share):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_main,
                               args=(child, port, app, mode, start, n,
                                     slow if i == 0 else 0, probes),
                               daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        self.done = [start] * len(self.pipes)
        for pipe in self.pipes:
            self._expect(pipe, "open", 300)

    def _expect(self, pipe: Connection, kind: str, timeout: float) -> tuple:
        if not pipe.poll(timeout):
            raise BenchError(f"a client process said nothing for {timeout}s")
        message = pipe.recv()
        if message[0] == "error":
            raise BenchError(message[1])
        if message[0] != kind:
            raise BenchError(f"a client process said {message!r}, expected {kind}")
        return message

    def wait_all(self, cursor: int, timeout: float = 60.0) -> None:
        """Until every connection of every process has ``cursor``."""
        deadline = time.monotonic() + timeout
        while min(self.done) < cursor:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"message {cursor} not everywhere after {timeout}s "
                                 f"(reached: {self.done})")
            for pipe in wait(self.pipes, left):
                assert isinstance(pipe, Connection)
                message = pipe.recv()
                if message[0] == "error":
                    raise BenchError(message[1])
                self.done[self.pipes.index(pipe)] = message[1]

    def results(self) -> tuple[int, dict[int, list[float]]]:
        errors, arrivals = 0, {}  # type: tuple[int, dict[int, list[float]]]
        for pipe in self.pipes:
            pipe.send("stop")
            while True:
                message = self._expect_any(pipe)
                if message[0] == "result":
                    break
            errors += message[1]
            for cursor, times in message[2].items():
                arrivals.setdefault(cursor, []).extend(times)
        return errors, arrivals

    def _expect_any(self, pipe: Connection) -> tuple:
        if not pipe.poll(60):
            raise BenchError("a client process did not answer")
        message = pipe.recv()
        if message[0] == "error":
            raise BenchError(message[1])
        return message

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.join(5)


# -- the phases -------------------------------------------------------------------------


class Publisher:
    """Publishes on one kept-alive connection (the plain app's ``POST /publish``, or a
    chat message through its API); the cursor (message id) each publish got."""

    def __init__(self, port: int, app: App, size: int = 16, chat: ChatClient | None = None,
                 ) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=30)
        self.app = app
        text = "x" * size
        if chat is not None:
            self.request = chat.raw_post(app.publish_path, {"text": text, "nick": "bench"},
                                         keep_alive=True)
        else:
            self.request = (f"POST {app.publish_path} HTTP/1.1\r\nHost: {HOST}\r\n"
                            f"Content-Length: {size}\r\n\r\n{text}").encode()
        self.buffer = b""

    def publish(self) -> tuple[int, float]:
        sent = time.perf_counter()
        self.sock.sendall(self.request)
        head, body = self._answer()
        if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 201")):
            raise BenchError(f"publishing answered {head[:200]!r} {body[:200]!r}")
        return int(re.search(rb'"(?:id|published)": ?(\d+)', body).group(1)), sent  # type: ignore[union-attr]

    def _answer(self) -> tuple[bytes, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        match = _LENGTH.search(head + b"\r\n")
        if match is None:
            raise BenchError(f"an answer without Content-Length: {head[:200]!r}")
        length = int(match.group(1))
        while len(rest) < length:
            self._read()
            rest = self.buffer.partition(b"\r\n\r\n")[2]
        self.buffer = rest[length:]
        return head, rest[:length]

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise BenchError("the server closed the publisher's connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def wait_for(server: ServerProcess, key: str, value: int, timeout: float = 120) -> None:
    try:
        server.wait_stats(lambda s: s[key] >= value, timeout, message=f"{key} >= {value}",
                          interval=0.05)
    except AssertionError as exc:
        raise BenchError(str(exc)) from None


def run_load(server: ServerProcess, clients: Clients, publisher: Publisher,
             messages: int, window: int = 1) -> dict:
    """Closed loop: publish, wait until every connection has the message ``window - 1``
    before it (1: the one just published), again; then until all have the last."""
    cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
    cursor = 0
    for _ in range(messages):
        cursor, _ = publisher.publish()
        clients.wait_all(cursor - window + 1)
    clients.wait_all(cursor)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds(server.pid) - cpu0
    deliveries = messages * clients.count
    return {"messages": messages, "seconds": seconds, "deliveries": deliveries,
            "deliveries_per_s": deliveries / seconds, "msgs_per_s": messages / seconds,
            "server_cpu_s": cpu, "cpu_us_per_delivery": cpu / deliveries * 1e6}


def latencies(clients: Clients, publisher: Publisher, probes: int) -> list[tuple[int, float]]:
    """Publish ``probes`` messages one at a time (each once the last is everywhere);
    (cursor, publish time) of each."""
    sent = []
    for _ in range(probes):
        cursor, at = publisher.publish()
        clients.wait_all(cursor)
        sent.append((cursor, at))
    return sent


def spread(sent: list[tuple[int, float]], arrivals: dict[int, list[float]]) -> dict:
    """first / p50 / p99 / last in ms of each probe; the median probe's figures."""
    rows = []
    for cursor, at in sent:
        times = sorted((t - at) * 1000 for t in arrivals.get(cursor, []))
        if times:
            rows.append((times[0], percentile(times, 50), percentile(times, 99), times[-1]))
    rows.sort(key=lambda r: r[3])
    first, p50, p99, last = rows[len(rows) // 2]
    return {"first_ms": first, "p50_ms": p50, "p99_ms": p99, "last_ms": last,
            "probes": len(rows)}


@dataclass
class Target:
    """A running server of an ``App`` and what publishing on it needs."""

    server: ServerProcess
    app: App
    chat: ChatClient | None = None

    def cursor(self) -> int:
        """The newest cursor: what a client starting now starts from."""
        if self.chat is None:
            return int(self.server.stats()["published_total"])
        code, body = self.chat.request("GET", f"/rooms/{ROOM}/messages")
        if code != 200:
            raise BenchError(f"GET /rooms/{ROOM}/messages answered {code}")
        return max([m["id"] for m in json.loads(body)["messages"]], default=0)

    def clients(self, mode: str, count: int, processes: int, probes: range = range(0),
                slow: int = 0) -> tuple[Clients, int]:
        start = self.cursor()
        return Clients(self.server.port, self.app, mode, start, count, processes,
                       probes, slow), start

    def publisher(self, size: int = 16) -> Publisher:
        return Publisher(self.server.port, self.app, size, self.chat)


def bench_streams(target: Target, streams: int, messages: int, processes: int,
                  probes: int) -> dict:
    server = target.server
    rss0 = server.rss_kib()
    base = target.cursor()
    # Chat ids are message ids; the probes are the messages after the load's.
    probe_ids = range(base + 2 * messages + 1, base + 2 * messages + probes + 1)
    clients, _ = target.clients("sse", streams, processes, probe_ids)
    publisher = target.publisher()
    try:
        wait_for(server, "event_streams", streams)
        rss1 = server.rss_kib()
        load = run_load(server, clients, publisher, messages)
        windowed = run_load(server, clients, publisher, messages, WINDOW)
        sent = latencies(clients, publisher, probes)
        errors, arrivals = clients.results()
    finally:
        publisher.close()
        clients.close()
    server.wait_stats(lambda s: s["event_streams"] == 0, 60, message="streams closed",
                      interval=0.05)
    return {"streams": streams, **load, "windowed": windowed,
            "latency": spread(sent, arrivals),
            "errors": errors, "kib_per_stream": (rss1 - rss0) / streams}


def bench_polls(target: Target, polls: int, messages: int, processes: int) -> dict:
    clients, _ = target.clients("poll", polls, processes)
    publisher = target.publisher()
    try:
        wait_for(target.server, "parked", polls)
        load = run_load(target.server, clients, publisher, messages)
        errors, _ = clients.results()
    finally:
        publisher.close()
        clients.close()
    return {"polls": polls, **load, "errors": errors}


def bench_slow(target: Target, streams: int, size: int, messages: int,
               processes: int) -> dict:
    """The others' latency with one client that never reads, and without it."""
    server = target.server
    out = {}
    for slow in (0, 1):
        cut0 = server.stats()["event_streams_cut_slow"]
        base = target.cursor()
        clients, _ = target.clients("sse", streams, processes,
                                    range(base + 1, base + messages + 1), slow)
        publisher = target.publisher(size)
        try:
            wait_for(server, "event_streams", streams + slow)
            sent = latencies(clients, publisher, messages)
            errors, arrivals = clients.results()
        finally:
            publisher.close()
            clients.close()
        p99 = sorted(percentile(sorted((t - at) * 1000 for t in arrivals[c]), 99)
                     for c, at in sent)
        out["with_slow" if slow else "without"] = {
            "p99_ms_median": p99[len(p99) // 2], "p99_ms_worst": p99[-1], "errors": errors,
            "cut": server.stats()["event_streams_cut_slow"] - cut0}
        server.wait_stats(lambda s: s["event_streams"] == 0, 60, message="streams closed",
                          interval=0.05)
    return out


@contextlib.contextmanager
def serve(app: App) -> Iterator[Target]:
    """The server of ``app``: the plain bench app, or the chat on a fresh database."""
    if app is PLAIN:
        with ServerProcess(wsgi_app_argv("bench.apps:comet", "--no-access-log",
                                         *ONE_ADDRESS),
                           name="comet-sse") as server:
            yield Target(server, app)
        return
    with tempfile.TemporaryDirectory(prefix="bench-sse-") as workdir:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir}/db.sqlite3",
               **PRODUCTION_ENV, **UNLIMITED_CHAT_ENV,
               "DJANGO_SETTINGS_MODULE": "chatsite.settings", "PYTHONUNBUFFERED": "1"}
        env.pop("COMET_BROKER", None)  # one process: the in-process hub
        manage("migrate", "--noinput", env=env)
        with ServerProcess(runcomet_argv("--no-access-log", *ONE_ADDRESS), name="runcomet",
                           env=env) as server:
            chat = ChatClient(server.port)
            setup_room(chat, ROOM, "bench_sse.py")
            # One post through the client: its session holds the name from then on.
            code, body = chat.request("POST", app.publish_path, {"text": "hello", "nick": "bench"})
            if code != 201:
                raise BenchError(f"posting answered {code}: {body[:200]!r}")
            yield Target(server, app, chat)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default=None,
                        help="comma-separated stream counts (default 1000,10000)")
    parser.add_argument("--messages", type=int, default=None,
                        help="messages per throughput run (default 400; 100 with --quick)")
    parser.add_argument("--clients", type=int, default=3, help="client processes")
    parser.add_argument("--app", choices=("plain", "chat"), default="plain",
                        help="the bare server's bench app, or the chat through Django")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    app = PLAIN if args.app == "plain" else CHAT
    counts = [int(n) for n in (args.streams or ("1000" if args.quick else "1000,10000"))
              .split(",")]
    messages = args.messages or (100 if args.quick else 400)
    probes = 5 if args.quick else 15
    if max(counts) + 300 > raise_fd_limit():
        parser.error("not enough file descriptors")
    load = os.getloadavg()[0]
    results: dict = {}
    try:
        with serve(app) as target:
            for n in counts:
                results[f"streams_{n}"] = bench_streams(
                    target, n, messages if n <= 1000 else max(20, messages // 10),
                    args.clients, probes)
            results["polls_1000"] = bench_polls(target, min(counts), max(20, messages // 10),
                                                args.clients)
            if app is PLAIN:  # chat messages are at most 2,000 characters
                results["slow"] = bench_slow(target, min(counts), SLOW_MESSAGE,
                                             SLOW_MESSAGES, args.clients)
    except (BenchError, ServerError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"bench_sse: FAILED: {exc}", file=sys.stderr)
        return 1
    rows = []
    poll = results["polls_1000"]
    for n in counts:
        r = results[f"streams_{n}"]
        lat = r["latency"]
        rows += [
            (f"{n:,} streams: deliveries/s", f"{r['deliveries_per_s']:,.0f}",
             f">= {TARGET_DELIVERIES:,}", verdict(r["deliveries_per_s"] >= TARGET_DELIVERIES)),
            (f"{n:,} streams: server CPU per delivery", f"{r['cpu_us_per_delivery']:.2f} us",
             f"<= {TARGET_CPU_US:g} us", verdict(r["cpu_us_per_delivery"] <= TARGET_CPU_US)),
            (f"{n:,} streams: messages/s (closed loop)", f"{r['msgs_per_s']:,.1f}", "", ""),
            (f"{n:,} streams, {WINDOW} messages in flight: deliveries/s",
             f"{r['windowed']['deliveries_per_s']:,.0f}", "", ""),
            ("  server CPU per delivery",
             f"{r['windowed']['cpu_us_per_delivery']:.2f} us", "", ""),
            (f"{n:,} streams: lost, duplicated or reordered", f"{r['errors']}", "0",
             verdict(r["errors"] == 0)),
            (f"{n:,} streams: one message first/p50/p99/last",
             f"{lat['first_ms']:.1f}/{lat['p50_ms']:.1f}/{lat['p99_ms']:.1f}/"
             f"{lat['last_ms']:.1f} ms",
             f"last <= {TARGET_LAST_MS:g} ms" if n >= 10000 else "",
             verdict(lat["last_ms"] <= TARGET_LAST_MS) if n >= 10000 else ""),
            (f"{n:,} streams: RSS per stream", f"{r['kib_per_stream']:.2f} KiB",
             f"<= {TARGET_KIB_PER_STREAM:g} KiB",
             verdict(r["kib_per_stream"] <= TARGET_KIB_PER_STREAM)),
        ]
    first = results[f"streams_{counts[0]}"]
    ratio = first["deliveries_per_s"] / poll["deliveries_per_s"]
    rows += [
        (f"{poll['polls']:,} re-polling long-polls: deliveries/s",
         f"{poll['deliveries_per_s']:,.0f}", "", ""),
        ("  server CPU per delivery", f"{poll['cpu_us_per_delivery']:.2f} us", "", ""),
        ("  lost, duplicated or reordered", f"{poll['errors']}", "0",
         verdict(poll["errors"] == 0)),
        (f"streams / long-polls at {counts[0]:,} (deliveries/s)", f"{ratio:.1f}x",
         # The target compares with the chat's long-poll (a Django request per answer);
         # the bare server's long-poll costs far less.
         f">= {TARGET_RATIO:g}x" if app is CHAT else "",
         verdict(ratio >= TARGET_RATIO) if app is CHAT else ""),
    ]
    slow = results.get("slow")
    rows += [] if slow is None else [
        (f"p99 of {counts[0]:,} streams, 64 KiB messages", f"{slow['without']['p99_ms_median']:.1f}"
         " ms", "", ""),
        ("  the same beside one client that never reads",
         f"{slow['with_slow']['p99_ms_median']:.1f} ms", "about the same", ""),
        ("  the slow client cut at --max-stream-buffer", f"{slow['with_slow']['cut']}", "1",
         verdict(slow["with_slow"]["cut"] == 1)),
    ]
    print_table(f"Event streams (SSE) against long-polls, one server process ({app.name})",
                rows)
    busy_note(load)
    save_results(f"bench_sse_{app.name}", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

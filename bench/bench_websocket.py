"""WebSocket against event streams, the chat on one runcomet process (issue 17's figures).

a. deliveries/s and server CPU per delivery to N open sockets in one room, then to N
   event streams in the same room and the same run (``bench_sse.py``'s closed-loop
   publisher: each message once every client has the one before; every client checks
   it got every message once, in order);
b. RSS per open socket (the handshake's Django request included, and freed);
c. server CPU per post: a message sent over a socket (no Django request: the visitor
   rebuilt from the handshake's session) against the same message as an HTTP POST;
d. the Autobahn cases against ``/demo/echo`` beside the ``websockets`` echo server
   (``bench_autobahn.py``).

Clients are several processes holding raw sockets in an epoll (``bench_sse.py``'s),
finding each frame's ``"event":"messages","id":N`` with a regular expression; the CPU
figure is the server's own (``/proc/<pid>/stat``).

Run from the repo root: ``.venv/bin/python bench/bench_websocket.py [--sockets 1000,10000]
[--quick]``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import multiprocessing as mp
import os
import re
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.sync.client import connect  # noqa: E402

from bench import bench_sse  # noqa: E402
from bench._common import (  # noqa: E402
    HOST,
    BenchError,
    ServerError,
    busy_note,
    cpu_seconds,
    print_table,
    raise_fd_limit,
    save_results,
    verdict,
)
from bench.bench_autobahn import compare as autobahn  # noqa: E402
from bench.bench_sse import CHAT, ROOM, App, Clients, Target, _Client, _Conn  # noqa: E402

TARGET_KIB_PER_SOCKET = 8.0
SOCKET = App("chat-websocket", f"/rooms/{ROOM}/socket", CHAT.poll_path, CHAT.publish_path,
             form=True)
_FRAME_ID = re.compile(rb'"event":"messages","id":(\d+)')
KEY = base64.b64encode(b"bench_websocket!").decode()
AUTOBAHN_CASES = ("1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.1.*", "9.2.*", "10.*")


class _SocketClient(_Client):
    """``bench_sse``'s client process, speaking WebSocket: a raw handshake, then the
    server's frames (unmasked text) scanned for their ids."""

    def request(self, after: int) -> bytes:
        return (f"GET {self.app.stream_path}?after={after} HTTP/1.1\r\nHost: {HOST}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n").encode()

    def read(self, fd: int) -> None:
        conn: _Conn = self.conns[fd]
        try:
            data = conn.sock.recv(262144)
        except BlockingIOError:
            return
        if not data:
            raise BenchError("the server closed a socket")
        text = conn.tail + data
        if conn.length < 0:  # the handshake's answer is not in yet
            end = text.find(b"\r\n\r\n")
            if end < 0:
                conn.tail = text
                return
            if not text.startswith(b"HTTP/1.1 101 "):
                raise BenchError(f"the handshake answered {text[:120]!r}")
            conn.length = 0
            text = text[end + 4:]
        matches = list(_FRAME_ID.finditer(text))
        ids = [m.group(1) for m in matches]
        # What follows the last id found is kept: an id cut by a read boundary (or
        # not yet ended by its comma) is matched with the next read, and only then.
        rest = text[matches[-1].end():] if matches else text
        if matches and rest[:1] != b",":  # the digits may go on in the next read
            ids.pop()
            rest = text[matches[-1].start():]
        conn.tail = rest[-64:]
        if ids:
            self.got(conn, ids)


def socket_client_main(control: Connection, port: int, app: App, mode: str, start: int,
                       count: int, slow: int, probes: range) -> None:
    """``bench_sse.client_main`` with the WebSocket client."""
    original = bench_sse._Client
    bench_sse._Client = _SocketClient  # type: ignore[misc]
    try:
        bench_sse.client_main(control, port, app, mode, start, count, slow, probes)
    finally:
        bench_sse._Client = original  # type: ignore[misc]


class SocketClients(Clients):
    """``processes`` processes holding ``count`` sockets of the room."""

    def __init__(self, port: int, start: int, count: int, processes: int) -> None:
        self.count = count
        ctx = mp.get_context("fork")
        self.pipes, self.procs = [], []
        share = [count // processes + (i < count % processes) for i in range(processes)]
        for n in share:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=socket_client_main,
                               args=(child, port, SOCKET, "ws", start, n, 0, range(0)),
                               daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        self.done = [start] * len(self.pipes)
        for pipe in self.pipes:
            self._expect(pipe, "open", 600)


def bench_sockets(target: Target, sockets: int, messages: int, processes: int) -> dict:
    server = target.server
    rss0 = server.rss_kib()
    clients = SocketClients(server.port, target.cursor(), sockets, processes)
    publisher = None
    try:
        bench_sse.wait_for(server, "websockets", sockets, timeout=300)
        rss1 = server.rss_kib()
        # Made once the sockets are open: 10,000 handshakes take longer than an idle
        # keep-alive connection is kept.
        publisher = target.publisher()
        load = bench_sse.run_load(server, clients, publisher, messages)
        errors, _ = clients.results()
    finally:
        if publisher is not None:
            publisher.close()
        clients.close()
    server.wait_stats(lambda s: s["websockets"] == 0, 120, message="sockets closed",
                      interval=0.05)
    return {"sockets": sockets, **load, "errors": errors,
            "kib_per_socket": (rss1 - rss0) / sockets}


def bench_streams(target: Target, streams: int, messages: int, processes: int) -> dict:
    rss0 = target.server.rss_kib()
    clients, _ = target.clients("sse", streams, processes)
    publisher = target.publisher()
    try:
        bench_sse.wait_for(target.server, "event_streams", streams, timeout=180)
        rss1 = target.server.rss_kib()
        load = bench_sse.run_load(target.server, clients, publisher, messages)
        errors, _ = clients.results()
    finally:
        publisher.close()
        clients.close()
    target.server.wait_stats(lambda s: s["event_streams"] == 0, 120, message="streams closed",
                             interval=0.05)
    return {"streams": streams, **load, "errors": errors,
            "kib_per_stream": (rss1 - rss0) / streams}


def rss_per_connection(kind: str, count: int, processes: int) -> float:
    """KiB of RSS per open socket or stream, each kind on a fresh server (what a first
    run leaves allocated would hide the second run's cost)."""
    with bench_sse.serve(CHAT) as target:
        server = target.server
        key = "websockets" if kind == "ws" else "event_streams"
        # A first round warms the process (imports, caches, the pool's threads).
        for phase in ("warm", "measured"):
            rss0 = server.rss_kib()
            clients = (SocketClients(server.port, target.cursor(), count, processes)
                       if kind == "ws" else target.clients("sse", count, processes)[0])
            try:
                bench_sse.wait_for(server, key, count, timeout=180)
                rss1 = server.rss_kib()
            finally:
                clients.close()
            server.wait_stats(lambda s: s[key] == 0, 120, message="closed", interval=0.05)
            if phase == "measured":
                return (rss1 - rss0) / count
    raise AssertionError("unreachable")


def bench_posts(target: Target, posts: int) -> dict:
    """Server CPU per post: over the poster's own socket, then as HTTP POSTs (the same
    socket open meanwhile, so both deliver to one follower)."""
    chat = target.chat
    assert chat is not None
    server = target.server
    cookies = "; ".join(f"{k}={v}" for k, v in chat.cookies.items())
    url = f"ws://{HOST}:{server.port}/rooms/{ROOM}/socket"
    out = {}
    with connect(url, additional_headers={"Cookie": cookies}, open_timeout=30) as ws:

        def until_mine(text: str) -> None:
            while True:
                frame = json.loads(ws.recv(timeout=30))
                if frame["event"] == "error":
                    raise BenchError(f"a socket post was refused: {frame['data']}")
                if frame["event"] == "messages" and any(
                        m["text"] == text for m in frame["data"]["messages"]):
                    return

        until_mine_first = f"warm {time.time()}"
        ws.send(json.dumps({"type": "post", "text": until_mine_first}))
        until_mine(until_mine_first)
        cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
        for n in range(posts):
            text = f"socket post {n}"
            ws.send(json.dumps({"type": "post", "text": text}))
            until_mine(text)
        out["socket"] = {"cpu_us_per_post": (cpu_seconds(server.pid) - cpu0) / posts * 1e6,
                         "posts_per_s": posts / (time.perf_counter() - t0)}
        publisher = target.publisher()
        try:
            cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
            for _ in range(posts):
                publisher.publish()
            out["http"] = {"cpu_us_per_post": (cpu_seconds(server.pid) - cpu0) / posts * 1e6,
                           "posts_per_s": posts / (time.perf_counter() - t0)}
        finally:
            publisher.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", default=None,
                        help="comma-separated socket counts (default 1000,10000)")
    parser.add_argument("--messages", type=int, default=None,
                        help="messages per throughput run (default 200; 60 with --quick)")
    parser.add_argument("--posts", type=int, default=200, help="posts per CPU-per-post run")
    parser.add_argument("--clients", type=int, default=3, help="client processes")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--no-autobahn", action="store_true")
    parser.add_argument("--no-streams-above", type=int, default=None,
                        help="measure event streams only up to this many (sockets still)")
    args = parser.parse_args()
    counts = [int(n) for n in (args.sockets or ("1000" if args.quick else "1000,10000"))
              .split(",")]
    messages = args.messages or (60 if args.quick else 200)
    if max(counts) + 300 > raise_fd_limit():
        parser.error("not enough file descriptors")
    # Thousands of handshakes (each a Django request on the pool) arrive at once; the
    # pool's queue must hold them, not answer 503 (a deployment's sockets reconnect
    # with backoff and jitter instead).
    os.environ["COMET_MAX_QUEUED"] = str(max(counts) * 2)
    # The clients read raw frames and never answer a ping: no ping, no idle drop
    # during a run (10,000 handshakes take longer than the default idle timeout).
    os.environ["COMET_WEBSOCKET_PING_INTERVAL"] = "1800"
    os.environ["COMET_WEBSOCKET_IDLE_TIMEOUT"] = "3600"
    load = os.getloadavg()[0]
    results: dict = {}
    try:
        with bench_sse.serve(CHAT) as target:
            for n in counts:
                each = messages if n <= 1000 else max(20, messages // 10)
                results[f"sockets_{n}"] = bench_sockets(target, n, each, args.clients)
                if args.no_streams_above is None or n <= args.no_streams_above:
                    results[f"streams_{n}"] = bench_streams(target, n, each, args.clients)
            results["posts"] = bench_posts(target, args.posts)
        n = min(counts)
        kinds = ("ws", "sse") if args.no_streams_above is None or n <= args.no_streams_above \
            else ("ws",)
        results["rss_kib"] = {kind: rss_per_connection(kind, n, args.clients) for kind in kinds}
        if not args.no_autobahn:
            results["autobahn"] = {name: {"passed": passed, "not_passed": [c for c, *_ in bad]}
                                   for name, (passed, bad)
                                   in autobahn(AUTOBAHN_CASES, 2).items()}
    except (BenchError, ServerError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"bench_websocket: FAILED: {exc}", file=sys.stderr)
        return 1
    rows = []
    for n in counts:
        ws, sse = results[f"sockets_{n}"], results.get(f"streams_{n}")
        if sse is None:
            rows += [
                (f"{n:,} sockets: deliveries/s", f"{ws['deliveries_per_s']:,.0f}", "", ""),
                (f"{n:,} sockets: server CPU per delivery",
                 f"{ws['cpu_us_per_delivery']:.2f} us", "", ""),
                (f"{n:,} sockets: lost, duplicated or reordered", f"{ws['errors']}", "0",
                 verdict(ws["errors"] == 0)),
                (f"{n:,} sockets: RSS per socket", f"{ws['kib_per_socket']:.2f} KiB",
                 f"<= {TARGET_KIB_PER_SOCKET:g} KiB",
                 verdict(ws["kib_per_socket"] <= TARGET_KIB_PER_SOCKET)),
            ]
            continue
        rows += [
            (f"{n:,} sockets: deliveries/s", f"{ws['deliveries_per_s']:,.0f}",
             f"SSE: {sse['deliveries_per_s']:,.0f}", ""),
            (f"{n:,} sockets: server CPU per delivery", f"{ws['cpu_us_per_delivery']:.2f} us",
             f"<= SSE's {sse['cpu_us_per_delivery']:.2f} us",
             verdict(ws["cpu_us_per_delivery"] <= sse["cpu_us_per_delivery"] * 1.05)),
            (f"{n:,} sockets: lost, duplicated or reordered", f"{ws['errors']}", "0",
             verdict(ws["errors"] == 0 and sse["errors"] == 0)),
            (f"{n:,} sockets: RSS per socket", f"{ws['kib_per_socket']:.2f} KiB",
             f"<= {TARGET_KIB_PER_SOCKET:g} KiB (SSE: {sse['kib_per_stream']:.2f} KiB)",
             verdict(ws["kib_per_socket"] <= TARGET_KIB_PER_SOCKET)),
        ]
    rss = results["rss_kib"]
    posts = results["posts"]
    rows += [
        (f"RSS per open socket ({min(counts):,}, fresh server, second round)",
         f"{rss['ws']:.2f} KiB", f"<= {TARGET_KIB_PER_SOCKET:g} KiB"
         + (f" (SSE: {rss['sse']:.2f} KiB)" if "sse" in rss else ""),
         verdict(rss["ws"] <= TARGET_KIB_PER_SOCKET)),
        ("server CPU per post over the socket", f"{posts['socket']['cpu_us_per_post']:,.0f} us",
         f"< HTTP POST's {posts['http']['cpu_us_per_post']:,.0f} us",
         verdict(posts["socket"]["cpu_us_per_post"] < posts["http"]["cpu_us_per_post"])),
    ]
    for name, summary in results.get("autobahn", {}).items():
        rows.append((f"Autobahn 1-7, 9.1-9.2, 10: {name}",
                     f"{summary['passed']} passed",
                     f"not passed: {', '.join(summary['not_passed']) or 'none'}", ""))
    if "autobahn" in results:
        mine = set(results["autobahn"]["comet /demo/echo"]["not_passed"])
        theirs = set(results["autobahn"]["websockets echo"]["not_passed"])
        rows.append(("  /demo/echo fails no case the websockets echo passes",
                     f"{sorted(mine - theirs) or 'none'}", "none", verdict(mine <= theirs)))
    print_table("WebSocket against event streams, the chat on one runcomet process", rows)
    busy_note(load)
    save_results("bench_websocket", results)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

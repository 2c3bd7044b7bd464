"""A loopback TCP proxy that delays every chunk by a fixed one-way time: a database
"on another machine" for benches, without ``tc netem`` (which would slow the loopback
of every process on the shared machine, not just ours).

Each direction of each connection has a reader (stamps the chunk's arrival) and a
writer (sends it once ``arrival + delay`` has passed), so a round trip costs two
delays and a burst is not delayed twice. Run it as its own process, so its threads do
not share the bench's interpreter:

    python -m bench.delay_proxy --upstream 127.0.0.1:5432 --delay-ms 0.5

It prints the port it listens on (one line) and serves until killed.
"""

from __future__ import annotations

import argparse
import queue
import socket
import sys
import threading
import time


def _reader(src: socket.socket, out: queue.SimpleQueue[tuple[float, bytes]]) -> None:
    try:
        while data := src.recv(65536):
            out.put((time.perf_counter(), data))
    except OSError:
        pass
    out.put((0.0, b""))


def _writer(dst: socket.socket, chunks: queue.SimpleQueue[tuple[float, bytes]],
            delay: float, other: socket.socket) -> None:
    try:
        while True:
            arrived, data = chunks.get()
            if not data:
                break
            wait = arrived + delay - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            dst.sendall(data)
    except OSError:
        pass
    for sock in (dst, other):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _pipe(src: socket.socket, dst: socket.socket, delay: float) -> None:
    chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
    threading.Thread(target=_reader, args=(src, chunks), daemon=True).start()
    threading.Thread(target=_writer, args=(dst, chunks, delay, src), daemon=True).start()


def serve(listener: socket.socket, upstream: tuple[str, int], delay: float) -> None:
    while True:
        client, _ = listener.accept()
        try:
            server = socket.create_connection(upstream, timeout=5)
        except OSError:
            client.close()
            continue
        server.settimeout(None)
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _pipe(client, server, delay)
        _pipe(server, client, delay)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="host:port to forward to")
    parser.add_argument("--delay-ms", type=float, default=0.5, help="one-way delay (ms)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    listener = socket.create_server(("127.0.0.1", args.port), backlog=128)
    print(listener.getsockname()[1], flush=True)
    sys.setswitchinterval(0.0005)  # a woken writer should not wait 5 ms for the GIL
    serve(listener, (host, int(port)), args.delay_ms / 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU instructions per hello-world request, counted by valgrind (callgrind).

Requests/s moves by 2x on a shared machine; instructions executed do not.  The server
(``python -m comet_server bench.apps:hello``) runs under callgrind twice, answering N1
and then N2 keep-alive requests from 10 connections; the difference divided by N2 - N1
is the cost of one request in the server's own process (user space: the kernel's
share of recv/send/epoll is not counted).  ``--against REV`` measures a git revision
the same way (in a temporary worktree) for a ratio in one run, e.g. the server before a
change::

    .venv/bin/python bench/bench_instructions.py --against 976f2b5

``--also OPTIONS`` measures this tree a second time with those server options added,
e.g. the cost of the metrics (on by default) against ``--metrics-path=''``::

    .venv/bin/python bench/bench_instructions.py --also="--metrics-path="
"""

from __future__ import annotations

import argparse
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
CONNECTIONS = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_response(sock: socket.socket, buffered: bytes) -> bytes:
    """Read one Content-Length response; return what was read beyond it."""
    data = buffered
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
            if len(body) >= length:
                return body[length:]
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk


def drive(port: int, requests: int) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60)
             for _ in range(CONNECTIONS)]
    rest = [b""] * CONNECTIONS
    for _ in range(requests // CONNECTIONS):
        for sock in socks:
            sock.sendall(REQUEST)
        for i, sock in enumerate(socks):
            rest[i] = read_response(sock, rest[i])
    for sock in socks:
        sock.close()


def instructions(tree: Path, requests: int, options: tuple[str, ...] = ()) -> int:
    """Total instructions of a server process that answered ``requests`` requests."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        port = free_port()
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", PYTHON, "-m",
             "comet_server", "bench.apps:hello", f"127.0.0.1:{port}", "--no-access-log",
             *options],
            cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            drive(port, requests)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(120)
        match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
        if not match:
            raise RuntimeError(f"no instruction total in {out}")
        return int(match[1])


def per_request(tree: Path, low: int, high: int, options: tuple[str, ...] = ()) -> float:
    return (instructions(tree, high, options) - instructions(tree, low, options)) \
        / (high - low)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="a git revision to measure too (ratio in one run)")
    parser.add_argument("--also", metavar="OPTIONS",
                        help="server options to measure this tree with too (ratio in one run)")
    parser.add_argument("--requests", type=int, default=2000,
                        help="extra requests of the second run (default 2000)")
    args = parser.parse_args()
    low, high = 500, 500 + args.requests
    rows = [("this tree", per_request(ROOT, low, high))]
    if args.also:
        rows.append((args.also, per_request(ROOT, low, high, tuple(shlex.split(args.also)))))
    elif args.against:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "tree"
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree),
                            args.against], cwd=ROOT, check=True)
            try:
                rows.append((args.against, per_request(tree, low, high)))
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                               check=False)
    print(f"instructions per hello-world request (callgrind, {CONNECTIONS} keep-alive "
          f"connections, {args.requests} requests):")
    for name, value in rows:
        print(f"  {name:>16}: {value:,.0f}")
    if len(rows) == 2:
        print(f"  ratio this/{rows[1][0]}: {rows[0][1] / rows[1][1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

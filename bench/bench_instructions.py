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

``--fanout N`` counts a fan-out instead: N long-polls parked on ``bench.apps:comet``,
then the instructions from one publish until every answer is read (read from the
running callgrind with ``callgrind_control -e Ir`` just before and after, so parking
and the readiness polls are not counted), per waiter.
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


def _ir(pid: int, port: int) -> int:
    """The instructions a callgrind run has executed so far.  callgrind_control asks
    through vgdb, which a process asleep in epoll answers late: poke it with requests
    (each a few hundred thousand instructions, well under 0.1% of a fan-out)."""
    query = subprocess.Popen(["callgrind_control", "-e", "Ir", str(pid)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while query.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                while sock.recv(65536):
                    pass
        except OSError:
            pass
        time.sleep(0.05)
    out = query.stdout.read() if query.stdout else ""
    match = re.search(r"Totals:\s+Ir\s+Th 1\s+([\d,]+)", out)  # "Totals: Ir / Th 1  773,478,663"
    if not match:
        raise RuntimeError(f"callgrind_control printed no Ir count:\n{out}")
    return int(match[1].replace(",", ""))


def fanout_per_waiter(tree: Path, waiters: int, options: tuple[str, ...] = ()) -> float:
    """Instructions per waiter of one publish to ``waiters`` parked long-polls."""
    sys.path.insert(0, str(tree))
    from bench._common import LongPolls
    from tests.helpers.proc import ServerProcess

    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", PYTHON, "-m",
            "comet_server", "bench.apps:comet", "127.0.0.1:0", "--no-access-log", *options]
    request = b"GET /wait HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    publish = b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"
    with ServerProcess(argv, name="callgrind", cwd=tree, start_timeout=300,
                       stop_timeout=120) as server:
        polls = LongPolls(server.port, request)
        try:
            polls.open(waiters, server=server, timeout=600)
            with socket.create_connection(("127.0.0.1", server.port), timeout=600) as pub:
                before = _ir(server.pid, server.port)
                pub.sendall(publish)
                polls.collect(timeout=600)
                pub.recv(4096)
                after = _ir(server.pid, server.port)
        finally:
            polls.close()
    return (after - before) / waiters


def per_request(tree: Path, low: int, high: int, options: tuple[str, ...] = ()) -> float:
    return (instructions(tree, high, options) - instructions(tree, low, options)) \
        / (high - low)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="a git revision to measure too (ratio in one run)")
    parser.add_argument("--also", metavar="OPTIONS",
                        help="server options to measure this tree with too (ratio in one run)")
    parser.add_argument("--fanout", type=int, metavar="N",
                        help="count a publish to N parked long-polls instead of hello")
    parser.add_argument("--requests", type=int, default=2000,
                        help="extra requests of the second run (default 2000)")
    args = parser.parse_args()
    if args.fanout:
        rows = [("this tree", fanout_per_waiter(ROOT, args.fanout))]
        if args.also:
            rows.append((args.also, fanout_per_waiter(ROOT, args.fanout,
                                                      tuple(shlex.split(args.also)))))
        print(f"instructions per waiter of one publish to {args.fanout:,} parked long-polls "
              "(callgrind):")
        for name, value in rows:
            print(f"  {name:>16}: {value:,.0f}")
        if len(rows) == 2:
            print(f"  ratio this/{rows[1][0]}: {rows[0][1] / rows[1][1]:.3f}")
        return 0
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

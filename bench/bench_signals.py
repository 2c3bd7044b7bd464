"""Signal amplification: what a typing flood from many sessions on one address costs
the server when a room has hundreds of parked long-polls that re-poll on each answer.

Before (``--signal-window 0``, no per-address typing limit: the behaviour of 911971e)
every typing signal answers every parked poll, and each answer brings its page back
through Django.  After (the defaults) a room's signals wake its polls at most once per
signal window, and typing is limited per address too.  Both servers run in this one
invocation, one after the other, on the same database and the same flood::

    .venv/bin/python bench/bench_signals.py            # 500 polls, 20 typists over 10 s
    .venv/bin/python bench/bench_signals.py --polls 500 --sessions 40 --seconds 2

Printed per server: typing requests (and how many were refused 429), the long-poll
answers they caused, and the server's CPU seconds from the flood's start until the
polls are quiet again (every poll parked, no answer for half a second), and how long
a message posted in the middle of the flood took to reach every one of the polls.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402  (after sys.path)
    HOST,
    PYTHON,
    ROOT,
    BenchError,
    cpu_seconds,
    raise_fd_limit,
    wait_parked,
)
from tests.helpers.proc import (  # noqa: E402
    PRODUCTION_ENV,
    UNLIMITED_CHAT_ENV,
    ServerProcess,
    runcomet_argv,  # noqa: E402
)

QUIET = 0.5  # seconds without a long-poll answer that end a measurement


class RePollers:
    """``count`` long-polls of one room on kept-alive sockets; each answer is read and
    the poll sent again at once, as the pages do.  Runs on its own thread."""

    def __init__(self, port: int, count: int, path: str) -> None:
        self.path = path
        self.request = self._request(0)
        self.answers = 0
        self.last_answer = time.monotonic()
        self.marker = ""  # answers with this message are counted, and the last one timed
        self.marked = 0
        self.marked_at = 0.0
        self.socks: dict[int, socket.socket] = {}
        self.bufs: dict[int, bytearray] = {}
        self.epoll = select.epoll()
        for _ in range(count):
            sock = socket.create_connection((HOST, port), timeout=10)
            sock.sendall(self.request)
            sock.setblocking(False)
            self.socks[sock.fileno()] = sock
            self.bufs[sock.fileno()] = bytearray()
            self.epoll.register(sock.fileno(), select.EPOLLIN)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _request(self, after: int) -> bytes:
        return f"GET {self.path}?after={after} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()

    def _run(self) -> None:
        while not self.stopping:
            for fd, _ in self.epoll.poll(0.2):
                try:
                    data = self.socks[fd].recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    raise BenchError("the server closed a long-poll")
                buf = self.bufs[fd]
                buf += data
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    continue
                head = bytes(buf[:end]).lower()
                length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
                if len(buf) < end + 4 + length:
                    continue
                if not buf.startswith(b"HTTP/1.1 200"):
                    raise BenchError(f"a long-poll got {bytes(buf[:100])!r}")
                body = json.loads(bytes(buf[end + 4:end + 4 + length]))
                if self.marker and any(m["text"] == self.marker for m in body["messages"]):
                    self.marked += 1
                    self.marked_at = time.monotonic()
                del buf[:end + 4 + length]
                self.answers += 1
                self.last_answer = time.monotonic()
                self.socks[fd].send(self._request(body["cursor"]))  # as pages do

    def close(self) -> None:
        self.stopping = True
        self.thread.join(5)
        for sock in self.socks.values():
            sock.close()
        self.epoll.close()


def typist(server: ServerProcess, nick: str) -> requests.Session:
    """A session with a guest name and the CSRF cookie, as a page has."""
    session = requests.Session()
    page = server.url("/rooms/lobby/")
    if session.get(page, timeout=10).status_code != 200:
        raise BenchError("the room page did not load")
    session.headers.update({"X-CSRFToken": session.cookies["csrftoken"], "Referer": page})
    answer = session.post(server.url("/rooms/lobby/nick"), data={"nick": nick},
                          timeout=10, allow_redirects=False)
    if answer.status_code != 302:
        raise BenchError(f"choosing a name: {answer.status_code}")
    return session


def measure(name: str, options: list[str], env: dict[str, str], args: argparse.Namespace,
            db: Path) -> dict[str, float]:
    env = {"DJANGO_SETTINGS_MODULE": "chatsite.settings", **PRODUCTION_ENV,
           "DATABASE_URL": f"sqlite:///{db}", **env}
    argv = runcomet_argv("--no-access-log", *options)
    with ServerProcess(argv, name=name, env=env) as server:
        sessions = [typist(server, f"{name}{i}") for i in range(args.sessions)]
        poster = typist(server, f"{name}-poster")
        polls = RePollers(server.port, args.polls, "/rooms/lobby/updates")
        polls.marker = f"mid-flood {name}"
        try:
            wait_parked(server, args.polls, 30)
            cpu0 = cpu_seconds(server.pid)
            answers0 = polls.answers
            statuses: list[int] = []
            start = time.monotonic()
            spacing = args.seconds / max(1, args.sessions * args.rounds)

            def send(session: requests.Session, due: float) -> None:
                # Each request leaves on time whatever the server's answers take.
                time.sleep(max(0.0, due - time.monotonic()))
                statuses.append(session.post(server.url("/rooms/lobby/typing"),
                                             timeout=60).status_code)

            senders = [threading.Thread(target=send, args=(
                session, start + (round_ * len(sessions) + i) * spacing))
                for round_ in range(args.rounds) for i, session in enumerate(sessions)]
            for sender in senders:
                sender.start()
            # Mid-flood, someone posts: how long until every page has the message?
            time.sleep(max(0.0, start + args.seconds / 2 - time.monotonic()))
            posted_at = time.monotonic()
            if poster.post(server.url("/rooms/lobby/messages"), timeout=60,
                           data={"text": polls.marker}).status_code != 201:
                raise BenchError("the mid-flood message was refused")
            for sender in senders:
                sender.join()
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                quiet = time.monotonic() - polls.last_answer > QUIET
                if quiet and server.stats()["parked"] >= args.polls:
                    break
                time.sleep(0.1)
            else:
                raise BenchError(f"{name}: the polls were not quiet after {args.timeout}s")
            cpu = cpu_seconds(server.pid) - cpu0
            elapsed = time.monotonic() - start
            if polls.marked < args.polls:
                raise BenchError(f"{name}: {polls.marked} pages got the message")
            delivery = polls.marked_at - posted_at
        finally:
            polls.close()
    return {"typing": len(statuses), "refused": statuses.count(429),
            "answers": polls.answers - answers0, "cpu": cpu, "elapsed": elapsed,
            "delivery": delivery}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=20, help="typists (one address)")
    parser.add_argument("--rounds", type=int, default=1, help="typing requests per typist")
    parser.add_argument("--seconds", type=float, default=10.0, help="the flood's length")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="bench-signals-") as tmp:
        db = Path(tmp) / "db.sqlite3"
        base = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatsite.settings",
                **PRODUCTION_ENV, "DATABASE_URL": f"sqlite:///{db}"}
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT,
                       env=base, check=True)
        unlimited = {k: v for k, v in UNLIMITED_CHAT_ENV.items()
                     if k != "CHAT_GUEST_NAME_SECONDS"}
        runs = [
            ("before", ["--signal-window", "0"], unlimited),
            ("after", [], {"CHAT_RATE_NAME_SESSION": "1000000/1"}),
        ]
        results = {name: measure(name, options, env, args, db) for name, options, env in runs}
    print(f"\n{args.sessions * args.rounds} typing requests from {args.sessions} sessions on "
          f"one address over {args.seconds:g} s, {args.polls} parked long-polls of the room "
          "re-polling on each answer:\n")
    print(f"{'':8} {'typing':>7} {'429':>5} {'poll answers':>13} {'server CPU s':>13} "
          f"{'CPU ms/typing':>14} {'until quiet s':>14} {'message to all s':>17}")
    for name, r in results.items():
        print(f"{name:8} {r['typing']:>7} {r['refused']:>5} {r['answers']:>13} "
              f"{r['cpu']:>13.2f} {1000 * r['cpu'] / max(1, r['typing']):>14.1f} "
              f"{r['elapsed']:>14.1f} {r['delivery']:>17.2f}")
    before, after = results["before"], results["after"]
    print(f"\nserver CPU after/before: {after['cpu'] / max(before['cpu'], 1e-9):.3f}; "
          f"poll answers after/before: {after['answers'] / max(1, before['answers']):.3f}")


if __name__ == "__main__":
    main()

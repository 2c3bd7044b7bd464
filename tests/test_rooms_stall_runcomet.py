"""A wave of room long-polls parked at distinct cursors, against real ``runcomet``
processes serving the chat with the production settings: one typing signal wakes them
all, or their short poll timeout ends them, and every poll is answered while a probe
on the same process keeps getting quick answers (answering such a wave once stalled
the loop for about 6 s)."""

from __future__ import annotations

import json
import os
import re
import resource
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.helpers.proc import (
    PRODUCTION_ENV,
    PYTHON,
    ROOT,
    ServerProcess,
    runcomet_argv,
    wait_until,
)

PARKED = 1000
WORST_PROBE_S = 0.5  # generous: CI machines are noisy (the old code stalled ~6 s)
SHORT_TIMEOUT = 8.0  # the poll timeout of the timeout-wave server: > parking them (views
# queue for the pool threads: on a loaded 2-core machine parking 1,000 took over 4.5 s)
ROOM = "stall"
PROBE_PATH = f"/rooms/{ROOM}/messages?before=1"  # a cheap page: one query, nothing found
TIMEOUT_ENV = "STALL_TEST_POLL_TIMEOUT"
SETTINGS = f"""import os

from chatsite.settings import *  # noqa: F403

CHAT_POLL_TIMEOUT = float(os.environ[{TIMEOUT_ENV!r}])
"""
# The room has 3 messages, then the site gets PARKED + 50 more elsewhere: every id
# from the room's newest to the site's newest is a valid cursor at which a poll of the
# room parks.
SEED = f"""
from chatsite.rooms.models import Message, Room
room = Room.objects.create(slug={ROOM!r}, title="Stall")
for i in range(3):
    Message.objects.create(room=room, author="seed", text=f"seed {{i}}")
other = Room.objects.get(slug="random")
Message.objects.bulk_create([Message(room=other, author="filler", text=f"filler {{i}}")
                             for i in range({PARKED + 50})])
print("NEWEST", Message.objects.order_by("-id").values_list("id", flat=True).first())
"""
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


@dataclass
class Site:
    tmp: Path
    env: dict[str, str]
    cursors: list[int]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """A fresh SQLite database with enough messages for PARKED distinct cursors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft < wanted:  # PARKED sockets at once, with room to spare
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    tmp = tmp_path_factory.mktemp("stall")
    (tmp / "stall_test_settings.py").write_text(SETTINGS)
    env = {**PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "stall_test_settings",
           "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}", TIMEOUT_ENV: "60",
           "PYTHONPATH": os.pathsep.join(p for p in (str(tmp), os.environ.get("PYTHONPATH"))
                                         if p)}
    full = {**os.environ, **env}
    full.pop("COMET_BROKER", None)
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=full,
                   check=True)
    seeded = subprocess.run([PYTHON, "manage.py", "shell", "-c", SEED], cwd=ROOT, env=full,
                            check=True, capture_output=True, text=True)
    newest = int(re.search(r"NEWEST (\d+)", seeded.stdout)[1])
    return Site(tmp, env, list(range(newest - PARKED + 1, newest + 1)))


def _serve(site: Site, poll_timeout: float, name: str) -> Iterator[ServerProcess]:
    server = ServerProcess(runcomet_argv("--no-access-log"), site.tmp, name=name,
                           env={**site.env, TIMEOUT_ENV: str(poll_timeout)})
    try:
        server.start()
        yield server
    finally:
        assert server.terminate() == 0


@pytest.fixture(scope="module")
def chat(site: Site) -> Iterator[ServerProcess]:
    """The chat with a long poll timeout: only the signal answers the polls."""
    yield from _serve(site, 120.0, "chat")


@pytest.fixture(scope="module")
def chat_short(site: Site) -> Iterator[ServerProcess]:
    """The chat with a SHORT_TIMEOUT poll timeout."""
    yield from _serve(site, SHORT_TIMEOUT, "chat-short")


class Probe(threading.Thread):
    """Asks for a cheap page on one keep-alive connection every 10 ms until stopped."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self.port = server.port
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        request = f"GET {PROBE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                while not self.stopping.is_set():
                    started = time.perf_counter()
                    sock.sendall(request)
                    answer = _read_answer(sock)
                    self.latencies.append(time.perf_counter() - started)
                    if not answer.startswith(b"HTTP/1.1 200 "):
                        self.errors.append(answer[:200].decode("latin-1"))
                    self.stopping.wait(0.01)
        except OSError as exc:
            self.errors.append(repr(exc))

    def __enter__(self) -> Probe:
        self.start()
        wait_until(lambda: self.latencies or self.errors, 10, "the probe's first answer")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.join(15)


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            match = _CONTENT_LENGTH.search(head + b"\r\n")
            if match is not None and len(body) >= int(match[1]):
                return data
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def park(server: ServerProcess, cursors: list[int]) -> list[tuple[socket.socket, float]]:
    """One connection per cursor, each sending its long-poll; (socket, sent at)."""
    sent = []
    for cursor in cursors:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(f"GET /rooms/{ROOM}/updates?after={cursor} HTTP/1.1\r\n"
                     f"Host: 127.0.0.1\r\n\r\n".encode())
        sent.append((sock, time.perf_counter()))
    return sent


def read_all(socks: list[socket.socket], timeout: float) -> list[tuple[bytes, float]]:
    """Each socket's complete answer (Content-Length framed) and when it was complete."""
    selector = selectors.DefaultSelector()
    data = {sock: b"" for sock in socks}
    done: dict[socket.socket, float] = {}
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while len(done) < len(socks) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            chunk = sock.recv(65536)
            data[sock] += chunk
            head, sep, body = data[sock].partition(b"\r\n\r\n")
            match = _CONTENT_LENGTH.search(head + b"\r\n") if sep else None
            if not chunk or (match is not None and len(body) >= int(match[1])):
                done[sock] = time.perf_counter()
                selector.unregister(sock)
    selector.close()
    return [(data[sock], done.get(sock, 0.0)) for sock in socks]


def check_answers(answers: list[tuple[bytes, float]], cursors: list[int],
                  typing: list[str]) -> None:
    assert len(answers) == len(cursors)
    unanswered = [c for (a, _), c in zip(answers, cursors, strict=True)
                  if not a.startswith(b"HTTP/1.1 200 ")]
    assert not unanswered, f"{len(unanswered)} polls not answered 200, e.g. {unanswered[:5]}"
    for (answer, _), cursor in zip(answers, cursors, strict=True):
        body = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert (body["messages"], body["cursor"], body["typing"]) == ([], cursor, typing)


def check_probe(probe: Probe) -> None:
    assert not probe.errors
    assert len(probe.latencies) >= 3
    worst = max(probe.latencies)
    assert worst < WORST_PROBE_S, f"the probe waited {worst:.3f}s at worst"


def test_one_signal_answers_a_thousand_distinct_cursors_without_a_stall(
        chat: ServerProcess, site: Site) -> None:
    session = requests.Session()
    assert session.get(chat.url(f"/rooms/{ROOM}/"), timeout=10).status_code == 200
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    chose = session.post(chat.url(f"/rooms/{ROOM}/nick"), data={"nick": "typist"},
                         allow_redirects=False, timeout=10)
    assert chose.status_code == 302
    base = chat.stats()["parked"]
    sent = park(chat, site.cursors)
    try:
        wait_until(lambda: chat.stats()["parked"] >= base + PARKED, 60, "the polls to park")
        with Probe(chat) as probe:
            assert session.post(chat.url(f"/rooms/{ROOM}/typing"), timeout=10).status_code \
                == 204
            answers = read_all([sock for sock, _ in sent], timeout=30)
        check_answers(answers, site.cursors, ["typist"])
        check_probe(probe)
    finally:
        for sock, _ in sent:
            sock.close()


def test_a_thousand_distinct_cursors_time_out_without_a_stall(
        chat_short: ServerProcess, site: Site) -> None:
    base = chat_short.stats()["parked"]
    sent = park(chat_short, site.cursors)
    try:
        # All parked before the first times out: then they time out as one wave (the
        # probe measures the wave, not the parking, which keeps the server saturated).
        wait_until(lambda: chat_short.stats()["parked"] >= base + PARKED, SHORT_TIMEOUT - 0.5,
                   "the polls to park before the first times out")
        with Probe(chat_short) as probe:
            answers = read_all([sock for sock, _ in sent], timeout=SHORT_TIMEOUT + 30)
    finally:
        for sock, _ in sent:
            sock.close()
    check_answers(answers, site.cursors, [])
    # Answered by the timeout (timers may fire up to 50 ms early), not at once.
    waited = [done - at for (_, done), (_, at) in zip(answers, sent, strict=True)]
    assert min(waited) >= SHORT_TIMEOUT - 0.1
    check_probe(probe)

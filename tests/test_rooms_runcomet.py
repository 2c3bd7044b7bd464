"""The chat's HTTP API against a real ``runcomet`` process: status codes, the cursor
protocol over the wire, and 1,000 parked updates long-polls woken by one post."""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import time
from collections.abc import Iterator

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


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """runcomet serving the chat on a fresh SQLite database."""
    tmp = tmp_path_factory.mktemp("chat")
    env = {"DJANGO_SETTINGS_MODULE": "chatsite.settings", **PRODUCTION_ENV,
           "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
           "CHAT_RATE_POST_SESSION": "1000/10"}  # one session posts a burst here
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT,
                   env={**os.environ, **env}, check=True)
    server = ServerProcess(runcomet_argv("--no-access-log"), tmp, env=env, name="chat")
    try:
        server.start()
        yield server
    finally:
        assert server.terminate() == 0


def session_for(chat: ServerProcess, slug: str = "random") -> requests.Session:
    """A browser-like session: the room page sets the CSRF cookie."""
    session = requests.Session()
    assert session.get(chat.url(f"/rooms/{slug}/"), timeout=10).status_code == 200
    session.headers.update({"X-CSRFToken": session.cookies["csrftoken"],
                            "Referer": chat.url(f"/rooms/{slug}/")})
    return session


def post(session: requests.Session, chat: ServerProcess, text: str, slug: str = "random",
         nick: str | None = None) -> requests.Response:
    # A guest name belongs to one session: each session posts under its own.
    nick = f"ann-{id(session):x}" if nick is None else nick
    return session.post(chat.url(f"/rooms/{slug}/messages"), data={"text": text, "nick": nick},
                        timeout=10)


def test_status_codes_over_the_wire(chat: ServerProcess) -> None:
    session = session_for(chat)
    created = post(session, chat, "hello over http")
    assert created.status_code == 201
    assert set(created.json()) >= {"id", "author", "text", "created"}
    assert post(session, chat, "   ").status_code == 400
    assert post(session, chat, "x" * 2001).status_code == 400
    assert "error" in post(session, chat, "").json()
    assert post(session, chat, "hi", slug="no-such-room").status_code == 404
    bare = requests.post(chat.url("/rooms/random/messages"), data={"text": "x", "nick": "z"},
                         timeout=10)
    assert bare.status_code == 403
    assert requests.get(chat.url("/rooms/random/updates?after=abc"), timeout=10).status_code \
        == 400
    assert requests.get(chat.url("/rooms/nope/updates?after=0"), timeout=10).status_code == 404


def test_cursor_protocol_gives_each_message_once_in_order(chat: ServerProcess) -> None:
    session = session_for(chat)
    start = requests.get(chat.url("/rooms/random/updates?after=0"), timeout=30).json()["cursor"]
    sent = [post(session, chat, f"m{i}").json()["id"] for i in range(12)]
    seen: list[int] = []
    cursor = start
    while len(seen) < len(sent):
        answer = requests.get(chat.url(f"/rooms/random/updates?after={cursor}"), timeout=30)
        body = answer.json()
        seen += [m["id"] for m in body["messages"]]
        assert body["cursor"] >= cursor
        cursor = body["cursor"]
    assert seen == sent


def _read_all(socks: list[socket.socket], deadline: float) -> dict[socket.socket, bytes]:
    """Read every socket until its HTTP answer is complete (Content-Length)."""
    selector = selectors.DefaultSelector()
    data: dict[socket.socket, bytes] = {}
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        data[sock] = b""
    done: set[socket.socket] = set()
    while len(done) < len(socks) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            chunk = sock.recv(65536)
            data[sock] += chunk
            head, sep, body = data[sock].partition(b"\r\n\r\n")
            if not chunk or (sep and b"content-length: %d" % len(body) in head.lower()):
                done.add(sock)
                selector.unregister(sock)
    selector.close()
    return data


def test_a_thousand_parked_polls_all_wake_on_one_post(chat: ServerProcess) -> None:
    session = session_for(chat, "lobby")
    # The newest message is where the polls park (a poll at the site's newest id waits:
    # asking the server for it with a poll would wait the whole poll timeout).
    cursor = post(session, chat, "before the wave", slug="lobby").json()["id"]
    base = chat.stats()["parked"]
    request = (f"GET /rooms/lobby/updates?after={cursor} HTTP/1.1\r\n"
               f"Host: 127.0.0.1\r\n\r\n").encode()
    socks = []
    try:
        for _ in range(PARKED):
            sock = socket.create_connection(("127.0.0.1", chat.port), timeout=10)
            sock.sendall(request)
            socks.append(sock)
        wait_until(lambda: chat.stats()["parked"] >= base + PARKED, 60, "1,000 parked polls")
        message = post(session, chat, "wake up, all of you", slug="lobby").json()
        answers = _read_all(socks, time.monotonic() + 60)
        bodies = [a.partition(b"\r\n\r\n")[2] for a in answers.values()]
        woken = [json.loads(b) for b in bodies if b]
        assert len(woken) == PARKED
        assert all([m["id"] for m in w["messages"]] == [message["id"]] for w in woken)
        assert all(w["cursor"] == message["id"] for w in woken)
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: chat.stats()["parked"] <= base, 10, "the polls to be gone")


def test_bad_input_stores_nothing(chat: ServerProcess) -> None:
    """Rejected posts leave the room's messages exactly as they were."""
    session = session_for(chat)
    before = requests.get(chat.url("/rooms/random/messages"), timeout=10).json()["messages"]
    for text, nick in [("", "ann"), (" \n\t ", "ann"), ("y" * 5000, "ann"),
                       ("fine text", "\x00bad"), ("fine text", "")]:
        assert post(session, chat, text, nick=nick).status_code == 400
    after = requests.get(chat.url("/rooms/random/messages"), timeout=10).json()["messages"]
    assert after == before

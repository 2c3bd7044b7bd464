"""Typing signals against a real ``runcomet``: a room's parked long-polls are woken by
signals at most once per ``--signal-window``, with every typist of the window; a
message wakes them at once and carries the held typists.  (One typing request used
to answer every parked poll of the room, each of which came back through Django.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import requests

from tests.helpers.http import connect, read_response
from tests.helpers.proc import PRODUCTION_ENV, PYTHON, ROOT, ServerProcess, runcomet_argv

POLLS = 40
WINDOW = 3.0  # seconds: long enough that "held" is not a race on a loaded machine


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("chat")
    env = {"DJANGO_SETTINGS_MODULE": "chatsite.settings", **PRODUCTION_ENV,
           "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}"}
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT,
                   env={**os.environ, **env}, check=True)
    server = ServerProcess(runcomet_argv("--no-access-log", "--signal-window", str(WINDOW)),
                           tmp, env=env, name="chat")
    try:
        server.start()
        yield server
    finally:
        assert server.terminate() == 0


def guest(chat: ServerProcess, nick: str) -> requests.Session:
    session = requests.Session()
    page = chat.url("/rooms/random/")
    assert session.get(page, timeout=10).status_code == 200
    session.headers.update({"X-CSRFToken": session.cookies["csrftoken"], "Referer": page})
    assert session.post(chat.url("/rooms/random/nick"), data={"nick": nick}, timeout=10,
                        allow_redirects=False).status_code == 302
    return session


def quiet(chat: ServerProcess) -> None:
    """Wait until no channel has a signal window open (the names' presence ones)."""
    chat.wait_stats(lambda s: s["signal_windows_open"] == 0, timeout=WINDOW * 3,
                    message="the signal windows closed")


def park(chat: ServerProcess, after: int) -> list[socket.socket]:
    request = (f"GET /rooms/random/updates?after={after} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Connection: close\r\n\r\n").encode()
    socks = []
    for _ in range(POLLS):
        sock = connect(chat.port, timeout=30)
        sock.sendall(request)
        socks.append(sock)
    chat.wait_stats(lambda s: s["parked"] >= POLLS, timeout=20, message=f"{POLLS} parked")
    return socks


def answered(socks: list[socket.socket], within: float) -> list[dict]:
    """The answers that arrive within ``within`` seconds (the rest stay parked)."""
    got = []
    for sock in socks:
        sock.settimeout(max(0.05, within))
        try:
            with sock.makefile("rb") as reader:
                got.append(json.loads(read_response(reader).body))
        except TimeoutError:
            pass
        within = 0.05
    return got


def test_signals_within_a_window_wake_parked_polls_once_together(chat: ServerProcess) -> None:
    ann, bob, cat = guest(chat, "ann"), guest(chat, "bob"), guest(chat, "cat")
    after = 0
    quiet(chat)
    polls = park(chat, after)
    assert ann.post(chat.url("/rooms/random/typing"), timeout=10).status_code == 204
    first = answered(polls, within=2)
    assert len(first) == POLLS and all(a["typing"] == ["ann"] for a in first)
    for sock in polls:
        sock.close()

    polls = park(chat, after)  # the pages re-poll, inside ann's window
    t0 = time.monotonic()
    assert bob.post(chat.url("/rooms/random/typing"), timeout=10).status_code == 204
    assert cat.post(chat.url("/rooms/random/typing"), timeout=10).status_code == 204
    assert answered(polls[:1], within=0.5) == []  # held: no answer yet
    rest = answered(polls[1:], within=WINDOW + 2)
    assert time.monotonic() - t0 >= WINDOW * 0.5
    assert len(rest) == POLLS - 1 and all(a["typing"] == ["bob", "cat"] for a in rest)
    for sock in polls:
        sock.close()


def test_a_message_wakes_at_once_with_the_held_typists(chat: ServerProcess) -> None:
    dan, eve = guest(chat, "dan"), guest(chat, "eve")
    quiet(chat)
    assert dan.post(chat.url("/rooms/random/typing"), timeout=10).status_code == 204  # opens
    after = max([0, *(m["id"] for m in requests.get(
        chat.url("/rooms/random/messages"), timeout=10).json()["messages"])])
    polls = park(chat, after)
    assert eve.post(chat.url("/rooms/random/typing"), timeout=10).status_code == 204
    assert eve.post(chat.url("/rooms/random/messages"), data={"text": "hi"},
                    timeout=10).status_code == 201
    got = answered(polls, within=2)
    assert len(got) == POLLS
    assert all([m["text"] for m in a["messages"]] == ["hi"] and "eve" in a["typing"]
               for a in got)
    for sock in polls:
        sock.close()

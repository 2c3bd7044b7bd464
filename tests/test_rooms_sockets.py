"""The chat's WebSockets (``/rooms/<slug>/socket``, ``/rooms/socket``) against a real
``runcomet`` process, with the ``websockets`` client: the stream's events in the
socket's frame shape, resume by ``?after=``, posts and typing over the socket under
the very rules of an HTTP post (validation, names, rate limits), and the Origin rule
with a visitor's cookies.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.helpers.proc import PRODUCTION_ENV, PYTHON, ROOT, ServerProcess, runcomet_argv

POSTS_PER_WINDOW = 4


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """runcomet serving the chat on a fresh SQLite database; a visitor may post
    ``POSTS_PER_WINDOW`` messages a minute (over HTTP and sockets together)."""
    tmp = tmp_path_factory.mktemp("chat-sockets")
    env = {"DJANGO_SETTINGS_MODULE": "chatsite.settings", **PRODUCTION_ENV,
           "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
           "CHAT_RATE_POST_SESSION": f"{POSTS_PER_WINDOW}/60",
           "CHAT_RATE_POST_ADDRESS": "1000/1", "CHAT_RATE_NAME_SESSION": "1000/1"}
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT,
                   env={**os.environ, **env}, check=True)
    server = ServerProcess(runcomet_argv("--no-access-log"), tmp, env=env, name="chat")
    try:
        server.start()
        yield server
    finally:
        assert server.terminate() == 0


class Visitor:
    """A browser-like visitor of a room: cookies, CSRF, a guest name."""

    def __init__(self, chat: ServerProcess, nick: str, slug: str = "random") -> None:
        self.chat, self.slug, self.nick = chat, slug, nick
        self.http = requests.Session()
        page = chat.url(f"/rooms/{slug}/")
        assert self.http.get(page, timeout=10).status_code == 200
        self.http.headers.update({"X-CSRFToken": self.http.cookies["csrftoken"],
                                  "Referer": page})
        chosen = self.http.post(chat.url(f"/rooms/{slug}/nick"), data={"nick": nick},
                                timeout=10, allow_redirects=False)
        assert chosen.status_code == 302, chosen.text

    def post_http(self, text: str) -> requests.Response:
        return self.http.post(self.chat.url(f"/rooms/{self.slug}/messages"),
                              data={"text": text}, timeout=10)

    @contextmanager
    def socket(self, path: str | None = None, origin: str | None = "own"
               ) -> Iterator[ClientConnection]:
        url = self.chat.url(path or f"/rooms/{self.slug}/socket").replace("http://", "ws://")
        cookies = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        own = self.chat.url("").rstrip("/")
        with connect(url, additional_headers={"Cookie": cookies},
                     origin=own if origin == "own" else origin,  # type: ignore[arg-type]
                     open_timeout=10, close_timeout=5) as client:
            yield client


def frames(client: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [json.loads(client.recv(timeout=10)) for _ in range(count)]


def until_event(client: ClientConnection, name: str) -> dict[str, Any]:
    """The next frame named ``name`` (others, such as presence, skipped)."""
    for _ in range(50):
        frame = json.loads(client.recv(timeout=10))
        if frame["event"] == name:
            return frame
    raise AssertionError(f"no {name} event")


def test_a_room_socket_starts_ready_and_carries_posts_with_ids(chat: ServerProcess) -> None:
    ann, bob = Visitor(chat, "ann-s1"), Visitor(chat, "bob-s1")
    with ann.socket() as a, bob.socket() as b:
        for client in (a, b):
            ready = until_event(client, "ready")
            assert "id" not in ready and {"presence", "cursor"} <= set(ready["data"])
        a.send(json.dumps({"type": "post", "text": "hello over the socket"}))
        for client in (a, b):
            frame = until_event(client, "messages")
            [message] = frame["data"]["messages"]
            assert (message["author"], message["text"]) == ("ann-s1",
                                                            "hello over the socket")
            assert frame["id"] == message["id"]
        assert bob.post_http("and over http").status_code == 201
        for client in (a, b):
            assert until_event(client, "messages")["data"]["messages"][0]["text"] \
                == "and over http"
        b.send(json.dumps({"type": "typing"}))
        assert until_event(a, "typing")["data"] == {"nick": "bob-s1"}


def test_a_socket_resumes_after_an_id_without_loss_or_duplicates(chat: ServerProcess) -> None:
    ann = Visitor(chat, "ann-s2")
    first = ann.post_http("resume one").json()["id"]
    ann.post_http("resume two")
    ann.post_http("resume three")
    with ann.socket(f"/rooms/random/socket?after={first}") as client:
        assert until_event(client, "ready")
        replayed = [until_event(client, "messages") for _ in range(2)]
    texts = [m["text"] for f in replayed for m in f["data"]["messages"]]
    assert texts == ["resume two", "resume three"]
    assert [f["id"] for f in replayed] == sorted({f["id"] for f in replayed})


def test_a_bad_post_over_the_socket_gets_the_http_post_s_error(chat: ServerProcess) -> None:
    ann = Visitor(chat, "ann-s3")
    with ann.socket() as client:
        until_event(client, "ready")
        client.send(json.dumps({"type": "post", "text": "   "}))
        error = until_event(client, "error")["data"]
        assert error["status"] == 400 and error["error"] and error["retry_after"] is None
        client.send("not json")
        assert until_event(client, "error")["data"]["status"] == 400
        client.send(json.dumps({"type": "post", "text": "x" * 5000}))
        assert until_event(client, "error")["data"]["status"] == 400


def test_posts_over_socket_and_http_share_one_rate_limit(chat: ServerProcess) -> None:
    """The session's window counts HTTP and socket posts alike; past it the socket
    gets a 429 error with retry_after, and nothing is stored or published."""
    ann = Visitor(chat, "ann-s4")
    for n in range(POSTS_PER_WINDOW - 1):
        assert ann.post_http(f"limit http {n}").status_code == 201
    with ann.socket() as client:
        until_event(client, "ready")
        client.send(json.dumps({"type": "post", "text": "limit last allowed"}))
        assert until_event(client, "messages")["data"]["messages"][0]["text"] \
            == "limit last allowed"
        client.send(json.dumps({"type": "post", "text": "limit one too many"}))
        error = until_event(client, "error")["data"]
        assert error["status"] == 429 and 1 <= error["retry_after"] <= 60
    assert ann.post_http("limit over http too").status_code == 429
    older = ann.http.get(chat.url("/rooms/random/messages"), timeout=10).json()["messages"]
    assert "limit one too many" not in [m["text"] for m in older]


def test_the_handshake_needs_the_site_s_own_origin(chat: ServerProcess) -> None:
    ann = Visitor(chat, "ann-s5")
    with pytest.raises(InvalidStatus) as refused, ann.socket(origin="http://evil.example"):
        pass
    assert refused.value.response.status_code == 403
    with ann.socket() as client:
        assert until_event(client, "ready")


def test_the_lobby_socket_starts_with_the_rooms_and_follows_posts(chat: ServerProcess) -> None:
    ann = Visitor(chat, "ann-s6")
    with ann.socket("/rooms/socket") as client:
        first = until_event(client, "rooms")
        assert "id" not in first and first["data"]["rooms"]
        posted = ann.post_http("seen from the lobby").json()["id"]
        frame = until_event(client, "rooms")
        assert frame["id"] == posted


def test_a_refused_socket_is_told_why_in_band(chat: ServerProcess) -> None:
    """A browser cannot read a refused handshake's status: the view's refusal comes as
    a ``refused`` message and a close 4000 + status (the page starts over on 400)."""
    ann = Visitor(chat, "ann-s7")
    for path, status in (("/rooms/random/socket?after=99999999", 400),
                         ("/rooms/no-such-room/socket", 404),
                         ("/rooms/socket?after=abc", 400)):
        with ann.socket(path) as client:
            refused = json.loads(client.recv(timeout=10))
            assert refused["event"] == "refused" and refused["data"]["status"] == status
            assert refused["data"]["error"]
            with pytest.raises(ConnectionClosed):
                client.recv(timeout=10)
            assert client.protocol.close_rcvd is not None
            assert client.protocol.close_rcvd.code == 4000 + status
    # From another site, the refusal stays an HTTP answer (nothing is accepted).
    with pytest.raises(InvalidStatus) as refused_http, \
            ann.socket("/rooms/no-such-room/socket", origin="http://evil.example"):
        pass
    assert refused_http.value.response.status_code == 404

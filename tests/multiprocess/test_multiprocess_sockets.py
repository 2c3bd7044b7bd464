"""The chat's WebSockets on two runcomet processes over the real Redis and PostgreSQL:
sockets on both, posters on both (over HTTP and over the sockets themselves); every
socket ends up with every message once, in order.  Redis is not restarted here (the
event streams' test does that; a socket resumes the same way, from ``?after=``)."""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.multiprocess import helpers
from tests.multiprocess.helpers import Poster, Server, wait_until

pytestmark = pytest.mark.multiprocess

SOCKETS_PER_SERVER = 4
POSTERS = 4
POSTS_EACH = 15
SOCKET_POSTS = 10


class SocketReader(threading.Thread):
    """A page's socket on one server: it shows each message id once (a frame may
    repeat one it holds) and, if the socket closes, reconnects with ``?after=`` its
    last id, as comet.js does."""

    def __init__(self, server: Server, slug: str, deadline: float) -> None:
        super().__init__(daemon=True)
        self.server, self.slug, self.deadline = server, slug, deadline
        self.last_id = 0
        self.shown: list[int] = []
        self._seen: set[int] = set()
        self.connections = 0
        self.failure: str | None = None
        self.stop = False

    def run(self) -> None:
        while not self.stop and time.monotonic() < self.deadline:
            url = self.server.url(f"/rooms/{self.slug}/socket?after={self.last_id}")
            try:
                with connect(url.replace("http://", "ws://"), open_timeout=10) as socket:
                    while not self.stop and time.monotonic() < self.deadline:
                        try:
                            frame = json.loads(socket.recv(timeout=0.2))
                        except TimeoutError:
                            continue
                        self._on(frame)
            except InvalidStatus as exc:
                self.failure = f"refused: {exc}"
                return
            except (ConnectionClosed, OSError):
                time.sleep(0.2)  # comet.js's reconnect pause

    def _on(self, frame: dict) -> None:
        if frame["event"] == "ready":
            self.connections += 1
        elif frame["event"] == "resync":
            self.failure = "got resync"
            self.stop = True
        elif frame["event"] == "error":
            self.failure = f"error: {frame['data']}"
        elif frame["event"] == "messages":
            for message in frame["data"]["messages"]:
                if message["id"] not in self._seen:
                    self._seen.add(message["id"])
                    self.shown.append(message["id"])
            self.last_id = max(self.last_id, frame["id"])


def socket_poster(server: Server, slug: str, index: int, problems: list[str]) -> None:
    """A named visitor (its first post over HTTP claims the name) who then posts over
    a socket on ``server``, waiting to see each of its posts come back."""
    me = Poster(f"sock{index}")
    try:
        me.post(server, slug, f"sock{index} says hello")
        cookies = "; ".join(f"{k}={v}" for k, v in me.session.cookies.items())
        url = server.url(f"/rooms/{slug}/socket").replace("http://", "ws://")
        with connect(url, additional_headers={"Cookie": cookies},
                     origin=server.url("").rstrip("/"), open_timeout=10) as socket:  # type: ignore[arg-type]
            for n in range(SOCKET_POSTS):
                text = f"sock{index} #{n}"
                socket.send(json.dumps({"type": "post", "text": text}))
                while True:
                    frame = json.loads(socket.recv(timeout=30))
                    if frame["event"] == "error":
                        raise AssertionError(f"refused: {frame['data']}")
                    if frame["event"] == "messages" and text in [
                            m["text"] for m in frame["data"]["messages"]]:
                        break
    except Exception as exc:  # noqa: BLE001 - reported by the test
        problems.append(f"socket poster {index}: {exc!r}")


def test_sockets_on_two_processes_get_every_message_once_in_order(
        start_chat_server, room, mp_database) -> None:
    slug, room_id = room
    a, b = start_chat_server(), start_chat_server()
    first = Poster("host").post(a, slug, "before the sockets")["id"]
    deadline = time.monotonic() + 120
    readers = [SocketReader(server, slug, deadline)
               for server in (a, b) for _ in range(SOCKETS_PER_SERVER)]
    for reader in readers:
        reader.start()
    try:
        wait_until(lambda: all(r.shown == [first] for r in readers), 30,
                   "every socket to open and replay the first message")
        wait_until(lambda: a.stats()["websockets"] == SOCKETS_PER_SERVER
                   and b.stats()["websockets"] == SOCKETS_PER_SERVER, 20,
                   "the sockets to be open on both processes")
        problems: list[str] = []

        def poster(index: int) -> None:
            me = Poster(f"poster{index}")
            servers = itertools.cycle((a, b) if index % 2 else (b, a))
            for n in range(POSTS_EACH):
                try:
                    me.post(next(servers), slug, f"p{index} #{n}")
                except Exception as exc:  # noqa: BLE001 - reported below
                    problems.append(f"poster {index}: {exc!r}")
                    return

        posters = [threading.Thread(target=poster, args=(i,), daemon=True)
                   for i in range(POSTERS)]
        for thread in posters:
            thread.start()
        socket_posters = [threading.Thread(target=socket_poster, args=(server, slug, i, problems),
                                           daemon=True)
                          for i, server in enumerate((a, b))]
        for thread in socket_posters:
            thread.start()
        for thread in posters + socket_posters:
            thread.join(60)
        assert not problems, problems
        expected = helpers.db_message_ids(mp_database, room_id)
        assert len(expected) == 1 + POSTERS * POSTS_EACH + 2 * (1 + SOCKET_POSTS)
        wait_until(lambda: all(len(r.shown) >= len(expected) or r.failure for r in readers),
                   max(1.0, deadline - time.monotonic()), "every socket to get every message")
    finally:
        for reader in readers:
            reader.stop = True
        for reader in readers:
            reader.join(10)
    assert not [r.failure for r in readers if r.failure], [r.failure for r in readers]
    for i, reader in enumerate(readers):
        assert reader.shown == expected, (
            f"socket {i} on {reader.server.name}: missing "
            f"{sorted(set(expected) - set(reader.shown))}, out of order "
            f"{[(x, y) for x, y in itertools.pairwise(reader.shown) if x >= y][:5]}")

"""The chat's event streams on two runcomet processes over the real Redis and PostgreSQL:
concurrent posters on both, streams on both, Redis restarted mid-run; every client ends
up with every message once, in order, resuming from the database after the outage."""

from __future__ import annotations

import itertools
import json
import threading
import time

import httpx
import pytest
from httpx_sse import ServerSentEvent, SSEError, connect_sse

from tests.multiprocess import helpers
from tests.multiprocess.helpers import Poster, Server, wait_until

pytestmark = pytest.mark.multiprocess

READERS_PER_SERVER = 5
POSTERS = 4
POSTS_EACH = 15


class StreamReader(threading.Thread):
    """A client of ``/rooms/<slug>/events`` as a browser's EventSource is: it reads
    events, and when the stream ends or breaks it reconnects to the same server with
    ``Last-Event-ID`` (after the stream's ``retry``, shortened to 0.2 s here).  Like the
    page, it shows a message id once (a frame may repeat one it already holds)."""

    def __init__(self, server: Server, slug: str, deadline: float) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.slug = slug
        self.deadline = deadline
        self.last_id: str | None = None
        self.shown: list[int] = []
        self._seen: set[int] = set()
        self.repeats = 0
        self.connections = 0  # streams that sent their ready event
        self.errors: list[str] = []
        self.failure: str | None = None
        self.stop = False

    def done(self) -> bool:
        return self.stop

    def run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(30, connect=5), trust_env=False) as client:
            while not self.done():
                if time.monotonic() > self.deadline:
                    self.failure = f"deadline passed with {len(self.shown)} messages"
                    return
                headers = {} if self.last_id is None else {"Last-Event-ID": self.last_id}
                try:
                    with connect_sse(client, "GET", self.server.url(f"/rooms/{self.slug}/events"),
                                     params={"after": 0}, headers=headers) as source:
                        if source.response.status_code != 200:
                            source.response.read()
                            self.failure = (f"HTTP {source.response.status_code}: "
                                            f"{source.response.text[:300]}")
                            return
                        for event in source.iter_sse():
                            self._on(event)
                            if self.done():
                                return
                except (httpx.HTTPError, SSEError) as exc:
                    self.errors.append(repr(exc))
                if not self.done():
                    time.sleep(0.2)  # the client's reconnect pause (EventSource's retry)

    def _on(self, event: ServerSentEvent) -> None:
        if event.event == "ready":
            self.connections += 1
        elif event.event == "resync":
            self.failure = "got resync: the stream could not replay the gap"
            self.stop = True
        elif event.event == "messages":
            for message in json.loads(event.data)["messages"]:
                if message["id"] in self._seen:
                    self.repeats += 1
                else:
                    self._seen.add(message["id"])
                    self.shown.append(message["id"])
            self.last_id = event.id


def test_streams_on_two_processes_get_every_message_once_through_a_redis_restart(
        start_chat_server, room, mp_database, keep_redis_running) -> None:
    slug, room_id = room
    a, b = start_chat_server(), start_chat_server()
    first = Poster("host").post(a, slug, "before the readers")["id"]
    deadline = time.monotonic() + 120
    readers = [StreamReader(server, slug, deadline)
               for server in (a, b) for _ in range(READERS_PER_SERVER)]
    for reader in readers:
        reader.start()
    try:
        wait_until(lambda: all(r.shown == [first] and r.connections == 1 for r in readers),
                   30, "every stream to open and replay the first message")
        wait_until(lambda: a.stats()["event_streams"] == READERS_PER_SERVER
                   and b.stats()["event_streams"] == READERS_PER_SERVER, 20,
                   "the streams to be open on both processes")

        posted: list[int] = []
        problems: list[str] = []
        lock = threading.Lock()

        def poster(index: int) -> None:
            me = Poster(f"poster{index}")
            servers = itertools.cycle((a, b) if index % 2 else (b, a))
            for n in range(POSTS_EACH):
                try:
                    message = me.post(next(servers), slug, f"p{index} #{n}")
                except Exception as exc:  # noqa: BLE001 - reported below
                    problems.append(f"poster {index}: {exc!r}")
                    return
                with lock:
                    posted.append(message["id"])

        posters = [threading.Thread(target=poster, args=(i,), daemon=True)
                   for i in range(POSTERS)]
        for thread in posters:
            thread.start()
        total = POSTERS * POSTS_EACH
        wait_until(lambda: len(posted) >= total // 3 or problems, 60, "a third of the posts")
        helpers.redis_stop()
        try:
            # Posts go on while Redis is down: each process's streams hear only its own.
            wait_until(lambda: len(posted) >= 2 * total // 3 or problems, 60,
                       "two thirds of the posts, during the outage")
        finally:
            helpers.redis_start()
        for thread in posters:
            thread.join(60)
        assert not problems, problems
        assert not any(t.is_alive() for t in posters), "a poster hung"

        expected = helpers.db_message_ids(mp_database, room_id)
        assert sorted(posted) == expected[1:] and expected[0] == first
        # Every reader holds every message, and has resumed at least once: Redis's
        # return ends every stream (events may have been missed meanwhile), and the
        # client comes back with Last-Event-ID to be replayed the rest from the database.
        try:
            wait_until(lambda: all((len(r.shown) >= len(expected) and r.connections >= 2)
                                   or r.failure or not r.is_alive() for r in readers),
                       max(1.0, deadline - time.monotonic()), "every reader to get every message")
        except AssertionError:
            raise AssertionError("readers short: " + ", ".join(
                f"{r.server.name} {len(r.shown)}/{len(expected)} in {r.connections} streams"
                for r in readers)) from None
    finally:
        for reader in readers:
            reader.stop = True  # they end with their streams, when the servers stop
    assert not [r.failure for r in readers if r.failure], [r.failure for r in readers]
    for i, reader in enumerate(readers):
        got = reader.shown
        assert got == expected, (
            f"reader {i} on {reader.server.name}: missing {sorted(set(expected) - set(got))}, "
            f"unexpected {sorted(set(got) - set(expected))}, out of order "
            f"{[(x, y) for x, y in zip(got, got[1:], strict=False) if x >= y][:5]}; "
            f"{reader.connections} connections, errors {reader.errors[:2]}")
    for server in (a, b):
        assert server.subscriptions() >= 2, f"{server.name} did not resubscribe"

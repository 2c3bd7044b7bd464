"""Long-polls woken by posts, presence and typing, with waiters parked in threads.

Every wait here waits for a condition (a waiter parked, an answer arrived) with a
generous deadline; nothing relies on a fixed sleep.
"""

import json
import threading
import time

import pytest
from django.db import connections, transaction
from django.test import Client

from chatsite.rooms import services
from chatsite.rooms.models import Room
from chatsite.rooms.updates import RoomUpdates
from comet_server.push.default_hub import get_hub
from tests.helpers.proc import wait_until

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

DEADLINE = 20.0  # seconds: only reached when something is broken



@pytest.fixture(autouse=True)
def long_timeout(settings):
    """Parked polls outlive any test that works; a broken wake shows as a failure."""
    settings.CHAT_POLL_TIMEOUT = DEADLINE


def waiting() -> int:
    return get_hub().waiting()


class Poll(threading.Thread):
    """One updates request, answered in its own thread like a browser's long-poll."""

    def __init__(self, client: Client, url: str) -> None:
        super().__init__(daemon=True)
        self.client, self.url = client, url
        self.status: int | None = None
        self.answer: dict | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            response = self.client.get(self.url)
            self.answer = json.loads(response.content)  # blocks until woken
            self.status = response.status_code  # after: a refusal found while waiting
        except BaseException as exc:  # reported by result()
            self.error = exc
        finally:
            connections.close_all()

    def result(self, status: int = 200) -> dict:
        self.join(DEADLINE + 5)
        assert not self.is_alive(), "the long-poll never answered"
        if self.error is not None:
            raise self.error
        assert self.status == status, (self.status, self.answer)
        return self.answer


def park(client: Client, url: str) -> Poll:
    """Start a long-poll and return once the hub holds it."""
    before = waiting()
    poll = Poll(client, url)
    poll.start()
    wait_until(lambda: waiting() > before or not poll.is_alive(), DEADLINE, "the poll to park",
               interval=0.005)
    return poll


def named(nick: str) -> Client:
    client = Client()
    assert client.post("/rooms/lobby/nick", {"nick": nick}).status_code == 302
    return client


@pytest.fixture
def room() -> Room:
    return Room.objects.get(slug="lobby")


def test_timeout_answers_an_empty_list_with_the_same_cursor(settings, room):
    settings.CHAT_POLL_TIMEOUT = 0.2
    message = services.post_message(room, "ann", "old news")
    response = Client().get(f"/rooms/lobby/updates?after={message.id}")
    assert json.loads(response.content) == {
        "messages": [], "cursor": message.id, "presence": [], "typing": []}


def test_a_parked_poll_wakes_on_a_post(room):
    poll = park(Client(), "/rooms/lobby/updates?after=0")
    message = services.post_message(room, "bob", "wake up")
    answer = poll.result()
    assert [m["id"] for m in answer["messages"]] == [message.id]
    assert answer["messages"][0]["text"] == "wake up"
    assert answer["cursor"] == message.id


def test_a_post_through_the_api_wakes_a_poll_in_another_thread():
    bob = named("bob")
    # Bob is already present, so his post writes no presence row while the poll reads
    # (the in-memory SQLite test database fails such overlaps instead of waiting).
    bob.get("/rooms/lobby/")
    poll = park(Client(), "/rooms/lobby/updates?after=0")
    posted = bob.post("/rooms/lobby/messages", {"text": "hi"}).json()
    assert poll.result()["messages"] == [posted]


def test_many_parked_polls_all_wake_on_one_post(room):
    polls = [park(Client(), "/rooms/lobby/updates?after=0") for _ in range(25)]
    assert waiting() == 25
    message = services.post_message(room, "bob", "to everyone")
    for poll in polls:
        assert [m["id"] for m in poll.result()["messages"]] == [message.id]


def test_a_post_in_another_room_does_not_wake_the_poll(room):
    poll = park(Client(), "/rooms/lobby/updates?after=0")
    services.post_message(Room.objects.get(slug="random"), "bob", "elsewhere")
    assert poll.is_alive() and waiting() == 1
    mine = services.post_message(room, "bob", "here")
    assert [m["id"] for m in poll.result()["messages"]] == [mine.id]


def test_publish_waits_for_the_commit(room):
    delivered: list = []
    get_hub().watch(("room:lobby",), 0, delivered.append)
    with transaction.atomic():
        message = services.post_message(room, "ann", "not yet")
        assert delivered == [], "published before the message was committed"
    assert [e.cursor for e in delivered[0].events] == [message.id]


def test_a_client_following_the_cursor_gets_every_message_once_in_order(room):
    """Bursts of posts (one bigger than an answer's cap) land while the client is parked
    or between its polls: it still gets every message once, in order.

    The in-memory SQLite test database fails a read that overlaps a write ("table is
    locked") instead of waiting, so the poster never writes while the client reads:
    ``db`` guards the view, and the next burst waits until the client has them all.
    """
    bursts = [1, 3, 1, 5, 2, 600, 1, 4, 2, 1]
    total = sum(bursts)
    db, received = threading.Lock(), threading.Condition()
    got: list[dict] = []

    def poster() -> None:
        try:
            posted = 0
            for n, size in enumerate(bursts):
                with db, transaction.atomic():
                    for i in range(size):
                        services.post_message(room, "bob", f"{n}.{i}")
                posted += size
                with received:
                    received.wait_for(lambda n=posted: len(got) >= n, DEADLINE)
        finally:
            connections.close_all()

    thread = threading.Thread(target=poster, daemon=True)
    client, cursor = Client(), 0
    thread.start()
    deadline = time.monotonic() + DEADLINE
    while len(got) < total:
        assert time.monotonic() < deadline, f"only {len(got)} of {total} arrived"
        with db:
            response = client.get(f"/rooms/lobby/updates?after={cursor}")
        answer = json.loads(response.content)  # parked until a burst, unless one is in
        assert answer["cursor"] >= cursor and len(answer["messages"]) <= 500
        if answer["messages"]:
            assert answer["cursor"] == answer["messages"][-1]["id"]
        cursor = answer["cursor"]
        with received:
            got.extend(answer["messages"])
            received.notify_all()
    thread.join(DEADLINE)
    ids = [m["id"] for m in got]
    assert ids == list(room.messages.order_by("id").values_list("id", flat=True))
    assert [m["text"] for m in got] == [f"{n}.{i}" for n, size in enumerate(bursts)
                                        for i in range(size)]


def test_a_joining_nick_wakes_the_room_with_the_new_presence():
    ann = named("ann")
    poll = park(ann, "/rooms/lobby/updates?after=0")  # ann is present from this poll
    assert named("bob").get("/rooms/lobby/").status_code == 200  # bob opens the room
    answer = poll.result()
    assert answer["messages"] == [] and answer["cursor"] == 0
    assert answer["presence"] == ["ann", "bob"]


def test_leaving_wakes_the_room_without_the_leaver():
    ann, bob = named("ann"), named("bob")
    bob.get("/rooms/lobby/")
    poll = park(ann, "/rooms/lobby/updates?after=0")
    assert bob.post("/rooms/lobby/leave").status_code == 204
    assert poll.result()["presence"] == ["ann"]


def test_typing_wakes_the_room_with_the_typist():
    ann, bob = named("ann"), named("bob")
    poll = park(ann, "/rooms/lobby/updates?after=0")
    assert bob.post("/rooms/lobby/typing").status_code == 204
    answer = poll.result()
    assert answer["typing"] == ["bob"] and answer["messages"] == []


def test_the_lobby_poll_wakes_with_new_counts(room):
    existing = services.post_message(room, "ann", "first")
    poll = park(Client(), f"/rooms/updates?after={existing.id}")
    message = services.post_message(room, "bob", "second")
    answer = poll.result()
    lobby = next(r for r in answer["rooms"] if r["slug"] == "lobby")
    assert lobby["count"] == 2 and answer["cursor"] == message.id


def test_the_lobby_poll_wakes_when_someone_joins():
    poll = park(Client(), "/rooms/updates?after=0")
    named("ann").get("/rooms/random/")
    answer = poll.result()
    assert next(r for r in answer["rooms"] if r["slug"] == "random")["present"] == 1


def test_the_lobby_poll_wakes_with_a_new_room():
    poll = park(Client(), "/rooms/updates?after=0")
    Client().post("/", {"slug": "new-room", "title": "New room", "description": ""})
    assert "new-room" in [r["slug"] for r in poll.result()["rooms"]]


def test_renderers_of_one_room_are_equal_so_waiters_share_a_render():
    assert RoomUpdates(1) == RoomUpdates(1) and hash(RoomUpdates(1)) == hash(RoomUpdates(1))
    assert RoomUpdates(1) != RoomUpdates(2)

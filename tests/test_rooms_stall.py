"""Requests that would make the chat's long-polls cost more than they should are refused
or coalesced: cursors from the future get 400, typing signals at most one per 2 s."""

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chatsite.rooms import services
from chatsite.rooms.models import Message, Room
from chatsite.throttle import Throttle

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def short_polls(settings):
    settings.CHAT_POLL_TIMEOUT = 0.05  # a poll that parks answers (empty) at once


@pytest.fixture
def room() -> Room:
    return Room.objects.get(slug="lobby")


@pytest.fixture
def newest(room) -> int:
    Message.objects.create(room=Room.objects.get(slug="random"), author="a", text="x")
    return Message.objects.create(room=room, author="a", text="y").id


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """A fresh typing throttle on a clock the test moves."""
    fake = FakeClock()
    monkeypatch.setattr(services, "typing_throttle",
                        Throttle(services.TYPING_EVERY, clock=fake))
    return fake


@pytest.mark.parametrize("url", ["/rooms/lobby/updates", "/rooms/random/updates",
                                 "/rooms/updates"])
def test_a_cursor_above_the_newest_message_is_400(url, newest):
    response = Client().get(url, {"after": newest + 1})
    assert response.status_code == 400
    assert "newest" in response.json()["error"]
    assert Client().get(url, {"after": 10**17}).status_code == 400


def test_the_newest_id_is_a_valid_cursor_everywhere(newest):
    # The random room's own newest message is older, but a cursor up to the site's
    # newest is accepted (a page may have learnt it from the lobby).
    for url in ["/rooms/lobby/updates", "/rooms/random/updates", "/rooms/updates"]:
        response = Client().get(url, {"after": newest})
        assert response.status_code == 200, url
        assert json.loads(response.content)["cursor"] == newest  # parked, timed out


def test_on_an_empty_site_only_zero_is_valid():
    response = Client().get("/rooms/lobby/updates", {"after": 0})
    assert response.status_code == 200 and json.loads(response.content)["cursor"] == 0
    assert Client().get("/rooms/lobby/updates", {"after": 1}).status_code == 400
    assert Client().get("/rooms/updates", {"after": 1}).status_code == 400


def test_the_check_is_one_aggregate_query(newest):
    with CaptureQueriesContext(connection) as queries:
        assert Client().get("/rooms/updates", {"after": newest + 1}).status_code == 400
    assert len(queries) == 1 and "MAX" in queries[0]["sql"].upper()


def named(nick: str) -> Client:
    client = Client()
    assert client.post("/rooms/lobby/nick", {"nick": nick}).status_code == 302
    return client


def typing_published(fresh_hub, client: Client, slug: str = "lobby") -> int:
    before = fresh_hub.published_total
    assert client.post(f"/rooms/{slug}/typing").status_code == 204
    return fresh_hub.published_total - before


def test_typing_twice_within_two_seconds_publishes_once(fresh_hub, clock):
    ann = named("ann")
    assert typing_published(fresh_hub, ann) == 1
    clock.now += 1.9
    assert typing_published(fresh_hub, ann) == 0  # still 204, nothing reaches the hub
    clock.now += 0.2  # 2.1 s after the first
    assert typing_published(fresh_hub, ann) == 1


def test_typing_is_coalesced_per_nick_and_room(fresh_hub, clock):
    ann, bob = named("ann"), named("bob")
    assert typing_published(fresh_hub, ann) == 1
    assert typing_published(fresh_hub, bob) == 1
    assert typing_published(fresh_hub, ann, "random") == 1
    assert typing_published(fresh_hub, ann) == 0


def test_the_typing_signal_still_wakes_the_room(fresh_hub, clock):
    got = []
    fresh_hub.watch(("room:lobby",), 10**6, got.append)
    typing_published(fresh_hub, named("ann"))
    assert [e.payload for e in got[0].events] == [{"type": "typing", "nick": "ann"}]


def test_the_throttle_forgets_old_keys_and_stays_bounded():
    fake = FakeClock()
    throttle = Throttle(2.0, max_keys=100, clock=fake)
    for i in range(50):
        assert throttle.allow(i)
    fake.now += 2.5
    assert throttle.allow("late") and len(throttle) == 1  # the 50 expired are gone
    for i in range(1000):  # a flood of distinct keys within the window
        throttle.allow(("flood", i))
    assert len(throttle) == 100
    assert not throttle.allow(("flood", 999))  # the newest are still remembered
    assert throttle.allow(("flood", 0))  # the oldest were forgotten early

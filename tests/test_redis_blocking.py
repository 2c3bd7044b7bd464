"""The blocking fallback through Redis (runserver, gunicorn, the test client):
``RedisBroker.wait_blocking`` and ``follow_blocking`` against the real Redis.

The race: an event published while a blocking wait starts is either in the hub's
history when it is read or reaches the wait's subscription, never neither.  The
publish is made to land exactly between the two steps by publishing from inside the
history read."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from comet_server.push.events import Event
from comet_server.push.hub import Hub
from comet_server.push.redis_broker import RedisBroker
from tests.helpers.proc import REDIS_URL


@pytest.fixture
def hub() -> Iterator[Hub]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is needed at {REDIS_URL}: {exc}")
    broker = RedisBroker(REDIS_URL)
    yield Hub(broker=broker)
    broker.client.close()


def publish_during_history_read(hub: Hub, channel: str, cursor: int,
                                also_in_history: bool = False) -> list[Event]:
    """Make the next history read publish ``cursor`` on ``channel`` right after it
    looked (or, with ``also_in_history``, right before, as a subscriber in this
    process would have received it)."""
    published: list[Event] = []
    read = hub.events_after

    def events_after(channels: tuple[str, ...], after: int | None) -> list[Event]:
        if published:
            return read(channels, after)
        if also_in_history:
            hub.receive(Event(channel, {"n": cursor}, cursor))
        found = read(channels, after)
        published.append(hub.publish(channel, {"n": cursor}, cursor))
        return found

    hub.events_after = events_after  # type: ignore[method-assign]
    return published


def test_a_publish_between_history_and_subscription_wakes_the_wait(hub: Hub) -> None:
    channel = f"race-{uuid.uuid4().hex[:12]}"
    published = publish_during_history_read(hub, channel, 7)
    t0 = time.monotonic()
    delivery = hub.wait_blocking((channel,), 3, timeout=5.0)
    elapsed = time.monotonic() - t0
    assert published, "the history was never read"
    assert [(e.channel, e.cursor, e.payload) for e in delivery.events] == \
        [(channel, 7, {"n": 7})]
    assert elapsed < 2.0, f"answered only at the timeout ({elapsed:.2f}s)"


def test_an_event_in_history_and_subscription_is_answered_once(hub: Hub) -> None:
    channel = f"race-both-{uuid.uuid4().hex[:12]}"
    publish_during_history_read(hub, channel, 8, also_in_history=True)
    delivery = hub.wait_blocking((channel,), 3, timeout=5.0)
    assert [e.cursor for e in delivery.events] == [8]


def test_a_stream_sends_an_event_in_history_and_subscription_once(hub: Hub) -> None:
    channel = f"race-follow-{uuid.uuid4().hex[:12]}"
    publish_during_history_read(hub, channel, 9, also_in_history=True)
    stream = hub.follow_blocking((channel,), 3, heartbeat=0.3, duration=1.2)
    cursors = [e.cursor for delivery in stream for e in delivery.events]
    assert cursors == [9]


def test_a_stream_gets_a_publish_between_history_and_subscription(hub: Hub) -> None:
    channel = f"race-follow-new-{uuid.uuid4().hex[:12]}"
    publish_during_history_read(hub, channel, 10)
    stream = hub.follow_blocking((channel,), 3, heartbeat=5.0, duration=5.0)
    t0 = time.monotonic()
    first = next(stream)
    stream.close()
    assert [e.cursor for e in first.events] == [10]
    assert time.monotonic() - t0 < 2.0


def test_the_wait_times_out_empty(hub: Hub) -> None:
    channel = f"quiet-{uuid.uuid4().hex[:12]}"
    t0 = time.monotonic()
    assert hub.wait_blocking((channel,), 3, timeout=0.3).events == []
    assert 0.25 < time.monotonic() - t0 < 3

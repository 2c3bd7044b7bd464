"""Unit tests of the hub's followers (the standing subscriptions of event streams):
no server, no Django.

The scheduler is fake: ``call_soon`` and ``after_io`` (the loop's next turn) are
recorded, and a test runs the turns itself, so a fan-out sliced over several turns and a
second dispatch in the middle of it can be arranged exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from comet_server.push import slicer
from comet_server.push.events import Delivery, Event
from comet_server.push.hub import Hub


class FakeLoop:
    """``call_soon`` callbacks run before the next ``after_io`` turn, as on the loop."""

    def __init__(self, hub: Hub) -> None:
        self.soon: list[Callable[[], Any]] = []
        self.turns: list[Callable[[], Any]] = []
        hub.set_scheduler(self.soon.append, after_io=self.turns.append)

    def run_soon(self) -> None:
        while self.soon:
            self.soon.pop(0)()

    def run_turn(self) -> None:
        self.run_soon()
        if self.turns:
            self.turns.pop(0)()
        self.run_soon()

    def run_all(self) -> int:
        count = 0
        self.run_soon()
        while self.turns:
            self.run_turn()
            count += 1
        return count


class Recorder:
    """A follower's ``deliver``: what it got, as (cursor or None) lists per batch;
    ``None`` for a "you may have missed events" end."""

    def __init__(self) -> None:
        self.batches: list[list[int | None] | None] = []
        self.deliveries: list[Delivery | None] = []

    def __call__(self, delivery: Delivery | None) -> None:
        self.deliveries.append(delivery)
        self.batches.append(None if delivery is None else [e.cursor for e in delivery.events])

    @property
    def cursors(self) -> list[int | None]:
        return [c for batch in self.batches if batch is not None for c in batch]


def test_without_a_scheduler_batches_are_delivered_at_publish() -> None:
    hub = Hub()
    got = Recorder()
    hub.follow(("c",), None, got)
    hub.publish("c", "a", cursor=1)
    hub.publish("c", "typing")
    assert got.batches == [[1], [None]]


def test_events_before_follow_are_not_delivered() -> None:
    """History is the caller's to send first: ``follow`` only delivers what comes next."""
    hub = Hub()
    hub.publish("c", "old", cursor=1)
    got = Recorder()
    hub.follow(("c",), 0, got)
    assert got.batches == []
    hub.publish("c", "new", cursor=2)
    assert got.batches == [[2]]


def test_cursor_filtering_within_one_dispatch() -> None:
    """A follower gets the events past its cursor and every signal, in publish order,
    and its cursor moves past the batch; nothing at all when nothing is past it."""
    hub = Hub()
    loop = FakeLoop(hub)
    behind, mid, ahead = Recorder(), Recorder(), Recorder()
    f_behind = hub.follow(("c",), None, behind)
    f_mid = hub.follow(("c",), 5, mid)
    f_ahead = hub.follow(("c",), 10, ahead)
    for cursor in (4, 5, 6, None, 7):
        hub.publish("c", cursor, cursor=cursor)
    loop.run_all()  # one dispatch for the five
    assert behind.batches == [[4, 5, 6, None, 7]]
    assert mid.batches == [[6, None, 7]]
    assert ahead.batches == [[None]]
    assert (f_behind.after, f_mid.after, f_ahead.after) == (7, 7, 10)
    hub.publish("c", "again", cursor=7)  # at the cursor: nobody gets it
    hub.publish("c", "old", cursor=3)
    loop.run_all()
    assert len(behind.batches) == len(mid.batches) == len(ahead.batches) == 1


def test_followers_in_step_share_one_delivery() -> None:
    """Streams that are caught up share one events list and one memo (frames are made
    once per batch, whatever the number of streams)."""
    hub = Hub()
    recorders = [Recorder() for _ in range(5)]
    for recorder in recorders:
        hub.follow(("c",), 3, recorder)
    hub.publish("c", "x", cursor=4)
    first = recorders[0].deliveries[0]
    assert first is not None
    assert all(r.deliveries[0] is first for r in recorders)


def test_in_order_delivery_when_a_fan_out_spans_several_turns(monkeypatch) -> None:
    """A second dispatch arriving while the first is still being handed out slice by
    slice is queued behind it: no follower ever gets a later batch first."""
    monkeypatch.setattr(slicer, "FAN_OUT_SLICE_SECONDS", 0.0)  # a slice per call
    hub = Hub()
    loop = FakeLoop(hub)
    recorders = [Recorder() for _ in range(200)]
    for i, recorder in enumerate(recorders):
        hub.follow(("c",), i % 3, recorder)  # three cursors: three groups, three jobs
    hub.publish("c", "first", cursor=10)
    loop.run_soon()  # the dispatch and the first slice
    served = sum(1 for r in recorders if r.batches)
    assert 0 < served < 200, served  # the fan-out really is sliced
    assert loop.turns, "the rest should wait for the next turn"
    hub.publish("c", "signal")
    hub.publish("c", "second", cursor=11)
    loop.run_soon()  # the second dispatch: queued, not delivered ahead
    assert sum(1 for r in recorders if len(r.batches) > 1) == 0
    turns = loop.run_all()
    assert turns >= 2
    for recorder in recorders:
        assert recorder.batches == [[10], [None, 11]]


def test_multi_channel_follower_is_matched_against_its_cursor_before_the_dispatch() -> None:
    """One dispatch with a:3 and b:2 for a follower of both at 0: it gets both (its
    cursor moves to 3 only once every channel was matched), then only what is past 3."""
    hub = Hub()
    loop = FakeLoop(hub)
    got = Recorder()
    follower = hub.follow(("a", "b"), 0, got)
    hub.publish("a", "a3", cursor=3)
    hub.publish("b", "b2", cursor=2)
    loop.run_all()
    assert sorted(got.cursors) == [2, 3]
    assert follower.after == 3
    hub.publish("b", "b3", cursor=3)
    hub.publish("b", "b4", cursor=4)
    loop.run_all()
    assert got.batches[-1] == [4] and len(got.batches) == 3


def test_unfollow_drops_batches_already_queued(monkeypatch) -> None:
    monkeypatch.setattr(slicer, "FAN_OUT_SLICE_SECONDS", 0.0)
    hub = Hub()
    loop = FakeLoop(hub)
    recorders = [Recorder() for _ in range(200)]
    followers = [hub.follow(("c",), None, r) for r in recorders]
    hub.publish("c", "x", cursor=1)
    loop.run_soon()
    waiting = [i for i, r in enumerate(recorders) if not r.batches]
    assert waiting, "everyone was served in the first slice"
    gone = waiting[-1]
    hub.unfollow(followers[gone])
    hub.unfollow(followers[gone])  # harmless twice
    assert hub.following() == 199
    loop.run_all()
    assert recorders[gone].batches == []
    assert all(r.batches == [[1]] for i, r in enumerate(recorders) if i != gone)
    hub.publish("c", "y", cursor=2)
    loop.run_all()
    assert recorders[gone].batches == []


def test_following_counts_each_follower_once() -> None:
    hub = Hub()
    assert hub.following() == 0
    one = hub.follow(("a", "b", "c"), None, Recorder())
    two = hub.follow(("a",), None, Recorder())
    assert hub.following() == 2
    hub.unfollow(one)
    assert hub.following() == 1
    hub.unfollow(two)
    hub.unfollow(None)
    assert hub.following() == 0
    assert hub._followers == {}  # no empty channel sets left behind


def test_wake_all_ends_every_follower_after_what_was_queued(monkeypatch) -> None:
    """A broker reconnect (``wake_all``): every follower gets ``None`` (its stream ends
    with LOST), on the loop and after the batches already queued for it, is dropped,
    and gets nothing more.  Parked waiters get their empty answer too."""
    monkeypatch.setattr(slicer, "FAN_OUT_SLICE_SECONDS", 0.0)
    hub = Hub()
    loop = FakeLoop(hub)
    recorders = [Recorder() for _ in range(150)]
    for recorder in recorders:
        hub.follow(("c", "d"), None, recorder)
    polls: list[Delivery] = []
    hub.watch(("c",), 0, polls.append)
    hub.publish("d", "x", cursor=1)
    loop.run_soon()
    assert any(not r.batches for r in recorders)  # mid fan-out
    hub.wake_all()
    assert hub.following() == 0 and hub.waiting() == 0
    loop.run_all()
    for recorder in recorders:
        assert recorder.batches == [[1], None]
    assert [d.events for d in polls] == [[]]
    hub.publish("c", "after", cursor=2)
    loop.run_all()
    assert all(r.batches == [[1], None] for r in recorders)


def test_wake_all_calls_nobody_back_from_inside() -> None:
    hub = Hub()
    loop = FakeLoop(hub)
    got = Recorder()
    hub.follow(("c",), None, got)
    hub.wake_all()
    assert got.batches == []
    loop.run_all()
    assert got.batches == [None]


def test_a_failing_follower_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub()
    before, after = Recorder(), Recorder()

    def broken(delivery: Delivery | None) -> None:
        raise RuntimeError("a broken stream")

    hub.follow(("c",), None, before)
    hub.follow(("c",), None, broken)
    hub.follow(("c",), None, after)
    logger = logging.getLogger("comet_server.push.slicer")  # may not propagate (settings)
    logger.addHandler(caplog.handler)
    try:
        hub.publish("c", "x", cursor=1)
    finally:
        logger.removeHandler(caplog.handler)
    assert before.batches == after.batches == [[1]]
    assert "error delivering to an event stream" in caplog.text
    hub.publish("c", "y", cursor=2)  # the hub still hands batches out
    assert before.batches == after.batches == [[1], [2]]


def test_receive_from_a_broker_reaches_followers() -> None:
    """Events that come in through ``receive`` (the broker's path) are delivered the
    same way."""
    hub = Hub()
    got = Recorder()
    hub.follow(("c",), 4, got)
    hub.receive(Event("c", "from redis", 5))
    assert got.batches == [[5]]


# -- the blocking fallback's stream (servers without comet: other threads publish) --------


def collect(batches) -> list[int | None]:
    return [e.cursor for delivery in batches for e in delivery.events]


def test_follow_blocking_gives_history_then_live_events_once() -> None:
    hub = Hub()
    hub.publish("c", "old", cursor=1)
    hub.publish("c", "kept", cursor=2)
    stream = hub.follow_blocking(("c",), 1, heartbeat=0.05, duration=0.5)
    first = next(stream)
    assert [e.cursor for e in first.events] == [2]
    assert hub.following() == 1
    hub.publish("c", "dup", cursor=2)
    hub.publish("c", "live", cursor=3)
    hub.publish("c", "signal")
    assert collect(stream) == [3, None]
    assert hub.following() == 0


def test_follow_blocking_misses_nothing_published_while_it_starts(monkeypatch) -> None:
    """Another thread publishing just between the stream's look at the history and its
    registration: the event must still reach the stream."""
    hub = Hub()
    hub.publish("c", "old", cursor=1)
    events_after = hub.events_after

    def then_another_thread_publishes(channels, after):
        found = events_after(channels, after)
        hub.publish("c", "in between", cursor=2)  # the hub's lock is free here
        return found

    monkeypatch.setattr(hub, "events_after", then_another_thread_publishes)
    stream = hub.follow_blocking(("c",), 0, heartbeat=0.05, duration=0.3)
    assert collect(stream) == [1, 2]

"""Coalescing signals wake parked long-polls at most once per signal window.

The scheduler is fake: ``call_soon`` runs at once and timers are recorded, so a test
ends a window by running its timer.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from comet_server.push.events import Delivery, Event
from comet_server.push.hub import Hub
from comet_server.push.signals import HELD_SIGNALS

WINDOW = 1.0


class FakeTimers:
    def __init__(self, hub: Hub) -> None:
        self.timers: list[tuple[float, Callable[[], None]]] = []
        hub.set_scheduler(lambda fn: fn())
        hub.set_signal_window(WINDOW, self.call_later)

    def call_later(self, seconds: float, fn: Callable[[], None]) -> None:
        self.timers.append((seconds, fn))

    def end_window(self) -> None:
        due, self.timers = self.timers, []
        for seconds, fn in due:
            assert seconds == WINDOW
            fn()


class Polls:
    """``count`` long-polls parked on a channel, re-parking as soon as answered (as
    pages do), counting their wake-ups and what each carried."""

    def __init__(self, hub: Hub, count: int, channel: str = "room") -> None:
        self.hub, self.channel = hub, channel
        self.after = 0  # the cursor pages re-poll from
        self.wakes = 0
        self.batches: list[list[Event]] = []
        for _ in range(count):
            self.park()

    def park(self) -> None:
        def wake(delivery: Delivery) -> None:
            self.wakes += 1
            self.batches.append(delivery.events)
            cursors = [e.cursor for e in delivery.events if e.cursor is not None]
            self.after = max([self.after, *cursors])
            self.park()
        self.hub.watch((self.channel,), self.after, wake)


@pytest.fixture
def hub() -> Hub:
    return Hub()


def typing(hub: Hub, nick: str, channel: str = "room") -> Event:
    return hub.publish(channel, {"type": "typing", "nick": nick}, coalesce=True)


def test_a_flood_of_signals_wakes_parked_polls_once_per_window(hub: Hub) -> None:
    timers = FakeTimers(hub)
    polls = Polls(hub, 500)
    typing(hub, "first")  # a quiet channel: at once
    assert polls.wakes == 500
    for i in range(1000):  # the rest of the window: held
        typing(hub, f"n{i}")
    assert polls.wakes == 500
    timers.end_window()
    assert polls.wakes == 1000  # once more, for all of them
    last = polls.batches[-1]
    assert len(last) == HELD_SIGNALS and last[-1].payload["nick"] == "n999"
    timers.end_window()  # a window that held nothing closes...
    assert polls.wakes == 1000 and not timers.timers
    typing(hub, "again")  # ...and the next signal goes at once
    assert polls.wakes == 1500


def test_a_message_wakes_at_once_and_carries_the_held_signals(hub: Hub) -> None:
    timers = FakeTimers(hub)
    polls = Polls(hub, 3)
    typing(hub, "a")
    typing(hub, "b")
    typing(hub, "c")
    assert polls.wakes == 3
    hub.publish("room", {"type": "message"}, cursor=7)
    assert polls.wakes == 6
    assert [e.payload.get("nick") for e in polls.batches[-1]] == ["b", "c", None]
    timers.end_window()
    assert polls.wakes == 6  # nothing left held


def test_other_cursorless_events_are_not_held(hub: Hub) -> None:
    """A moderation change or a membership change has no cursor but must not wait."""
    FakeTimers(hub)
    polls = Polls(hub, 2)
    typing(hub, "a")
    hub.publish("room", {"type": "membership"})
    assert polls.wakes == 4


def test_event_streams_get_every_signal_at_once(hub: Hub) -> None:
    FakeTimers(hub)
    got: list[Event] = []
    hub.follow(("room",), None, lambda d: got.extend(d.events) if d else None)
    for nick in "abc":
        typing(hub, nick)
    assert [e.payload["nick"] for e in got] == ["a", "b", "c"]


def test_windows_are_per_channel(hub: Hub) -> None:
    FakeTimers(hub)
    one, two = Polls(hub, 1, "one"), Polls(hub, 1, "two")
    typing(hub, "a", "one")
    typing(hub, "a", "two")
    assert (one.wakes, two.wakes) == (1, 1)


def test_without_a_window_signals_wake_at_once(hub: Hub) -> None:
    hub.set_scheduler(lambda fn: fn())
    polls = Polls(hub, 2)
    for nick in "abc":
        typing(hub, nick)
    assert polls.wakes == 6


def test_the_coalesce_flag_crosses_the_broker() -> None:
    event = Event("room", {"type": "typing"}, None, coalesce=True)
    assert Event.from_json(event.to_json()).coalesce
    assert not Event.from_json(Event("room", 1, 5).to_json()).coalesce
    with pytest.raises(ValueError):
        Hub().publish("room", {}, cursor=3, coalesce=True)

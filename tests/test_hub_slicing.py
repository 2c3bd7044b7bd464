"""A fan-out is woken in slices bounded by time: slow renders cannot stall the loop.

The scheduler here is fake: ``call_soon`` runs at once and ``after_io`` (the next loop
turn) is recorded, so a test runs the turns itself and times each one.  So is the
clock: a render "takes" its time by moving ``time.perf_counter`` (which the hub reads)
forward, so the turns' lengths are exact whatever else the machine is doing.
"""

import time

import pytest

from comet_server.push import slicer
from comet_server.push.events import Delivery
from comet_server.push.hub import Hub

RENDER_COST = 1 / 256  # seconds each waiter's answer below takes (exact in binary)
# No turn may keep the loop longer than a slice and the one render that crossed it.
LOOP_BUDGET = slicer.FAN_OUT_SLICE_SECONDS + RENDER_COST


class FakeClock:
    """``time.perf_counter`` that moves only when a render says it worked."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


clock = FakeClock()


@pytest.fixture(autouse=True)
def fake_clock(monkeypatch):
    monkeypatch.setattr(time, "perf_counter", clock)


def burn(seconds: float) -> None:
    clock.now += seconds


def timed(fn) -> float:
    start = clock()
    fn()
    return clock() - start


class FakeLoop:
    """Records the turns the hub schedules and runs them, timing each one."""

    def __init__(self, hub: Hub) -> None:
        self.turns: list = []
        self.durations: list[float] = []
        hub.set_scheduler(self.call_soon, after_io=self.turns.append)

    def call_soon(self, fn) -> None:
        self.run(fn)

    def run(self, fn) -> None:
        self.durations.append(timed(fn))

    def run_turns(self) -> None:
        while self.turns:
            self.run(self.turns.pop(0))


def slow_waiters(hub: Hub, count: int, channel: str = "c") -> tuple[list, list[int]]:
    woken: list[int] = []

    def waiter(i: int):
        def deliver(delivery: Delivery) -> None:
            burn(RENDER_COST)  # a render that shares nothing (distinct cursors)
            woken.append(i)
        return deliver

    watches = [hub.watch((channel,), 0, waiter(i)) for i in range(count)]
    return watches, woken


def test_slow_renders_are_woken_over_many_short_turns(fresh_hub):
    loop = FakeLoop(fresh_hub)
    _, woken = slow_waiters(fresh_hub, 100)  # 0.5 s of renders in all
    fresh_hub.publish("c", "x", cursor=1)  # dispatch and first slice run now
    assert 0 < len(woken) < 100 and len(loop.turns) == 1
    loop.run_turns()
    assert sorted(woken) == list(range(100))  # everyone, once
    assert max(loop.durations) <= LOOP_BUDGET, loop.durations
    per_turn = int(slicer.FAN_OUT_SLICE_SECONDS // RENDER_COST) + 1
    assert len(loop.durations) >= 100 // per_turn  # ~0.4 s of work in slices of ~20 ms


def test_cheap_renders_still_go_by_the_count_cap(fresh_hub, monkeypatch):
    monkeypatch.setattr(slicer, "FAN_OUT_SLICE_SECONDS", 60.0)  # only the count counts
    loop = FakeLoop(fresh_hub)
    got: list[Delivery] = []
    for _ in range(slicer.FAN_OUT_SLICE * 2 + 1):
        fresh_hub.watch(("c",), 0, got.append)
    fresh_hub.publish("c", "x", cursor=1)
    assert len(got) == slicer.FAN_OUT_SLICE
    loop.run_turns()
    assert len(got) == slicer.FAN_OUT_SLICE * 2 + 1 and len(loop.durations) == 3


def test_a_waiter_cancelled_before_its_time_slice_is_not_woken(fresh_hub):
    loop = FakeLoop(fresh_hub)
    watches, woken = slow_waiters(fresh_hub, 30)
    fresh_hub.publish("c", "x", cursor=1)
    pending = [i for i in range(30) if i not in woken]
    assert pending, "all were woken in one turn"
    fresh_hub.cancel(watches[pending[-1]])
    loop.run_turns()
    assert sorted(woken) == [i for i in range(30) if i != pending[-1]]


def test_wake_all_goes_through_the_loop_in_slices(fresh_hub):
    queued: list = []
    turns: list = []
    fresh_hub.set_scheduler(queued.append, after_io=turns.append)
    watches, woken = slow_waiters(fresh_hub, 30)
    fresh_hub.wake_all()
    assert woken == [] and fresh_hub.waiting() == 0  # nothing rendered synchronously
    assert len(queued) == 1
    fresh_hub.cancel(watches[29])  # cancelled before its slice: not woken
    durations = [timed(queued.pop())]
    assert 0 < len(woken) < 29 and turns
    while turns:
        durations.append(timed(turns.pop(0)))
    assert sorted(woken) == list(range(29))
    assert max(durations) <= LOOP_BUDGET, durations


def test_wake_all_shares_one_empty_delivery(fresh_hub):
    got: list[Delivery] = []
    for after in range(10):
        fresh_hub.watch(("c", "d"), after, got.append)
    fresh_hub.wake_all()  # no scheduler: at once
    assert len(got) == 10 and len({id(d) for d in got}) == 1 and got[0].events == []


def test_a_failing_waiter_does_not_lose_the_others(fresh_hub):
    got: list[int] = []

    def bad(delivery: Delivery) -> None:
        raise RuntimeError("boom")

    for i in range(50):  # the bad one lands somewhere among them (a set's order)
        fresh_hub.watch(("c",), 0, bad if i == 25 else lambda d, i=i: got.append(i))
    with pytest.raises(RuntimeError):  # no scheduler: the publisher sees the error...
        fresh_hub.publish("c", "x", cursor=1)
    assert sorted(got) == [i for i in range(50) if i != 25]  # ...after all the others


def test_fan_out_is_timed_once_per_dispatch_and_deliveries_counted(fresh_hub):
    """The fan-out histogram gets one observation for a dispatch's waiters (however
    many deliveries they need) and one per group of followers; ``delivered_total``
    counts waiters woken with events and batches handed to followers, not the empty
    answers of ``wake_all``."""
    soon: list = []
    turns: list = []
    fresh_hub.set_scheduler(soon.append, after_io=turns.append)

    def run_all() -> None:
        while soon or turns:
            (soon or turns).pop(0)()

    observed: list[float] = []
    fresh_hub.on_fanout = observed.append
    for after in (0, 0, 1, 1, 1):  # two cursors: two deliveries for the waiters
        fresh_hub.watch(("c",), after, lambda d: burn(RENDER_COST))
    for after in (0, 1):  # two groups of followers
        fresh_hub.follow(("c",), after, lambda d: burn(RENDER_COST))
    fresh_hub.publish("c", "a", cursor=1)
    fresh_hub.publish("c", "b", cursor=2)  # one dispatch for both
    run_all()
    assert len(observed) == 3 and all(seconds > 0 for seconds in observed)
    assert fresh_hub.delivered_total == 5 + 2
    fresh_hub.watch(("c",), 5, lambda d: None)
    fresh_hub.wake_all()
    run_all()
    assert fresh_hub.delivered_total == 7 and len(observed) == 3

"""Unit tests of the hub and the blocking driver: no server, no Django."""

import threading

import pytest

from comet_server.push.events import Delivery, Event
from comet_server.push.hub import Hub
from comet_server.push.waits import Sleep, WaitForEvents, iterate_blocking


def test_publish_wakes_waiters_behind_the_cursor_only():
    hub = Hub()
    got: dict[str, Delivery] = {}
    hub.watch(("c",), 4, lambda d: got.setdefault("behind", d))
    ahead = hub.watch(("c",), 5, lambda d: got.setdefault("ahead", d))
    hub.publish("c", {"n": 5}, cursor=5)
    assert [e.payload for e in got["behind"].events] == [{"n": 5}]
    assert "ahead" not in got and ahead.active
    assert hub.waiting() == 1


def test_signal_wakes_everyone_and_is_not_replayed():
    hub = Hub()
    got = []
    hub.watch(("c",), 100, got.append)
    hub.publish("c", {"type": "typing"})
    assert got and got[0].events[0].cursor is None
    assert hub.events_after(("c",), 0) == []


def test_history_answers_a_late_waiter_at_once():
    hub = Hub()
    hub.publish("c", "a", cursor=1)
    hub.publish("c", "b", cursor=2)
    got = []
    watch = hub.watch(("c",), 1, got.append)
    assert [e.payload for e in got[0].events] == ["b"]
    assert not watch.active and hub.waiting() == 0  # answered, not registered


def test_watch_never_calls_back_from_inside_the_registration():
    """Under a server the wake-up of a waiter the history already answers is scheduled
    like any other (the caller finishes registering first), and a cancel before it runs
    stops it."""
    hub = Hub()
    scheduled: list = []
    hub.set_scheduler(scheduled.append)
    hub.receive(Event("c", "a", 1))
    for fn in scheduled[:]:
        fn()
    scheduled.clear()
    got: list[Delivery] = []
    hub.watch(("c",), 0, got.append)
    assert got == [] and len(scheduled) == 1
    scheduled.pop()()
    assert [e.payload for e in got[0].events] == ["a"]
    cancelled = hub.watch(("c",), 0, got.append)
    hub.cancel(cancelled)
    scheduled.pop()()
    assert len(got) == 1


def test_wake_ups_run_after_the_hub_lock_is_released():
    """No wake-up runs while the hub holds its lock: another thread can take it."""
    hub = Hub()
    free: list[bool] = []

    def lock_is_free() -> bool:
        result: list[bool] = []

        def probe() -> None:
            acquired = hub._lock.acquire(timeout=0)
            result.append(acquired)
            if acquired:
                hub._lock.release()

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        return result[0]

    hub.watch(("c",), 0, lambda delivery: free.append(lock_is_free()))
    hub.publish("c", "x", cursor=1)
    hub.watch(("c",), 0, lambda delivery: free.append(lock_is_free()))  # from history
    assert free == [True, True]


def test_one_dispatch_shares_events_and_memo_between_equal_waiters():
    hub = Hub()
    got: list[Delivery] = []
    for _ in range(100):
        hub.watch(("c", "d"), 0, got.append)
    hub.watch(("c",), 0, got.append)
    hub.publish("c", "x", cursor=1)
    assert len(got) == 101
    assert len({id(d) for d in got}) == 2  # one Delivery per (channels, after) group
    assert len({id(d.memo) for d in got}) == 1


def test_cancel_and_wake_all():
    hub = Hub()
    got = []
    w = hub.watch(("c",), 0, got.append)
    hub.cancel(w)
    hub.cancel(w)  # twice is harmless
    hub.publish("c", "x", cursor=1)
    assert got == []
    hub.watch(("c",), 1, got.append)
    hub.wake_all()
    assert got[0].events == [] and hub.waiting() == 0


def test_scheduler_defers_fan_out_to_the_loop():
    hub = Hub()
    queued = []
    hub.set_scheduler(queued.append)
    got = []
    hub.watch(("c",), 0, got.append)
    hub.publish("c", "x", cursor=1)
    hub.publish("c", "y", cursor=2)
    assert got == [] and len(queued) == 1  # one dispatch for a burst
    queued[0]()
    assert [e.payload for e in got[0].events] == ["x", "y"]


def test_bad_publishes_are_refused_before_anything_is_stored():
    hub = Hub()
    with pytest.raises(ValueError):
        hub.publish("", "x")
    with pytest.raises(TypeError):
        hub.publish("c", "x", cursor="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        hub.publish("c", object(), cursor=1)
    assert hub.events_after(("c",), 0) == []


def test_event_json_round_trip_is_serialised_once():
    event = Event("c", {"a": [1, 2]}, 7)
    data = event.to_json()
    assert event.to_json() is data
    back = Event.from_json(data)
    assert (back.channel, back.cursor, back.payload) == ("c", 7, {"a": [1, 2]})


def test_wait_objects_validate():
    with pytest.raises(ValueError):
        Sleep(-1)
    with pytest.raises(ValueError):
        WaitForEvents((), None, 1)
    with pytest.raises(ValueError):
        WaitForEvents(("c",), None, 0)


def test_iterate_blocking_runs_a_coroutine_on_a_thread():
    hub = Hub()

    def coroutine():
        yield b"a"
        yield Sleep(0)
        delivery = yield WaitForEvents(("c",), 0, 30)
        yield b"".join(e.to_json() for e in delivery.events)

    threading.Timer(0.05, hub.publish, args=("c", "late"), kwargs={"cursor": 1}).start()
    body = b"".join(iterate_blocking(coroutine(), hub))
    assert body.startswith(b"a") and b'"late"' in body


def test_iterate_blocking_times_out_empty_and_rejects_junk():
    hub = Hub()

    def waits():
        delivery = yield WaitForEvents(("c",), None, 0.05)
        yield b"%d" % len(delivery.events)

    assert b"".join(iterate_blocking(waits(), hub)) == b"0"

    def junk():
        yield 42

    with pytest.raises(TypeError):
        list(iterate_blocking(junk(), hub))


def test_a_waiter_cancelled_before_its_fan_out_slice_is_not_woken():
    hub = Hub()
    turns: list = []
    hub.set_scheduler(lambda fn: fn(), after_io=turns.append)
    got: list[int] = []
    watches = [hub.watch(("c",), 0, lambda d, i=i: got.append(i)) for i in range(1200)]
    hub.publish("c", "x", cursor=1)
    assert len(got) == 500 and len(turns) == 1  # the rest waits for the next turn
    waiting = next(i for i in range(1200) if i not in got)
    hub.cancel(watches[waiting])
    while turns:
        turns.pop()()
    assert len(got) == 1199 and waiting not in got

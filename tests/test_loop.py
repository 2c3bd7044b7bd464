"""The event loop's timers, call_soon and readers, on a real libevent base."""

import socket
import threading

from comet_server.loop import EventLoop


def test_timers_fire_in_deadline_order_and_cancelled_ones_never():
    loop = EventLoop()
    fired: list[str] = []
    loop.call_later(0.03, lambda: fired.append("c"))
    loop.call_later(0.01, lambda: fired.append("a"))
    loop.call_later(0.02, lambda: fired.append("b"))
    doomed = [loop.call_later(0.01, lambda: fired.append("never")) for _ in range(200)]
    for timer in doomed:  # enough to compact the queue
        timer.cancel()
    loop.call_later(0.05, loop.stop)
    loop.run()
    loop.close()
    assert fired == ["a", "b", "c"]


def test_a_timer_set_from_a_timer_callback_and_errors_do_not_stop_the_queue():
    loop = EventLoop()
    fired: list[int] = []

    def boom() -> None:
        raise RuntimeError("logged, not fatal")

    def again() -> None:
        fired.append(1)
        if len(fired) < 3:
            loop.call_later(0.01, again)
        else:
            loop.stop()

    loop.call_later(0.01, boom)
    loop.call_later(0.01, again)
    loop.run()
    loop.close()
    assert fired == [1, 1, 1]


def test_call_soon_from_another_thread_wakes_the_loop():
    loop = EventLoop()
    got: list[str] = []

    def from_thread() -> None:
        loop.call_soon(lambda: (got.append(threading.current_thread().name), loop.stop()))

    loop.call_later(0.01, lambda: threading.Thread(target=from_thread, name="t").start())
    loop.call_later(10, loop.stop)  # a safety net, never reached when it works
    loop.run()
    loop.close()
    assert got == ["MainThread"]


def test_reader_fires_on_data():
    loop = EventLoop()
    a, b = socket.socketpair()
    seen: list[bytes] = []

    def on_readable() -> None:
        seen.append(a.recv(100))
        stop_reading()
        loop.stop()

    stop_reading = loop.add_reader(a.fileno(), on_readable)
    loop.call_later(0.01, lambda: b.send(b"ping"))
    loop.run()
    loop.close()
    a.close()
    b.close()
    assert seen == [b"ping"]


def test_timers_set_in_a_burst_fire_in_one_batch():
    """Timers of one duration due within the slack run in the same loop turn, before
    anything scheduled with call_soon from the first of them."""
    loop = EventLoop()
    order: list[str] = []

    def first() -> None:
        order.append("timer")
        loop.call_soon(lambda: order.append("next turn"))

    loop.call_later(0.5, first)
    for _ in range(99):
        loop.call_later(0.5, lambda: order.append("timer"))
    loop.call_later(0.7, loop.stop)
    loop.run()
    loop.close()
    assert order == ["timer"] * 100 + ["next turn"]


def test_a_burst_of_ready_events_runs_whole_across_the_wait_and_the_gil_keeping_turn():
    """More readers ready at once than the GIL-free wait runs (BURST_CALLBACKS): the
    rest of the burst runs in the next turn, none lost or run twice; stop() from a
    callback of that turn leaves run(), and run() can be entered again."""
    loop = EventLoop()
    pairs = [socket.socketpair() for _ in range(40)]
    seen: list[int] = []
    stops = []

    def reader(i: int) -> None:
        pairs[i][0].recv(100)
        seen.append(i)
        stops[i]()
        if len(seen) == len(pairs):
            loop.stop()

    for i, (a, _) in enumerate(pairs):
        stops.append(loop.add_reader(a.fileno(), lambda i=i: reader(i)))

    def burst() -> None:
        for _, b in pairs:
            b.send(b"x")

    loop.call_later(0.01, lambda: threading.Thread(target=burst).start())
    safety = loop.call_later(10, loop.stop)  # never reached when it works
    loop.run()
    assert sorted(seen) == list(range(len(pairs)))
    safety.cancel()
    again: list[str] = []
    loop.call_later(0.01, lambda: (again.append("ran"), loop.stop(after=0.01)))
    loop.run()
    loop.close()
    for a, b in pairs:
        a.close()
        b.close()
    assert again == ["ran"]

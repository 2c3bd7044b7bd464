"""A small event loop over libevent's ``event_base``: timers, fd readers, call_soon.

Callbacks cross into C through a fixed set of CFUNCTYPE objects made once for the
life of the loop; ``void *arg`` carries an integer id looked up in a dict, never a
Python object pointer (a collected callback object would crash the process).  Every
callback is wrapped: ctypes would swallow an exception, so we log it, and a fatal one
(SystemExit, KeyboardInterrupt) breaks the loop and is raised again from ``run``.
Knows nothing of HTTP.
"""

from __future__ import annotations

import itertools
import logging
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from ctypes import byref
from functools import partial

from comet_server import ctypes_event as ev

log = logging.getLogger("comet_server.loop")

TIMER_BUDGET = 0.02  # seconds of timer callbacks per loop turn, at most
# Callbacks run in the GIL-free wait before it returns to the GIL-keeping call (run):
# few enough that a burst of ready events costs few GIL takes, enough that events
# arriving one at a time rarely pay the extra take of returning.
BURST_CALLBACKS = 8


class Timer:
    """A one-shot timer; ``cancel()`` before it fires to drop it."""

    __slots__ = ("deadline", "fn", "queue")

    def __init__(self, deadline: float, fn: Callable[[], None], queue: _TimerQueue) -> None:
        self.deadline, self.queue = deadline, queue
        self.fn: Callable[[], None] | None = fn  # None once fired or cancelled

    def cancel(self) -> None:
        if self.fn is not None:
            self.fn = None
            self.queue.cancelled += 1
            self.queue.maybe_compact()


class IoWatch:
    """A persistent event on one fd, made once and switched on and off cheaply
    (a connection toggles between reading and watching for a close many times)."""

    __slots__ = ("loop", "event", "handler_id", "active")

    def __init__(self, loop: EventLoop, event: int, handler_id: int) -> None:
        self.loop, self.event, self.handler_id, self.active = loop, event, handler_id, False

    def start(self) -> None:
        if not self.active:
            ev.event_add(self.event, None)
            self.active = True

    def stop(self) -> None:
        if self.active:
            ev.event_del(self.event)
            self.active = False

    def close(self) -> None:
        """Free the event (it is stopped too); harmless once a one-shot event fired."""
        if self.event and self.handler_id in self.loop._handlers:
            self.loop._drop(self.handler_id, self.event)
            self.event = 0
            self.active = False


class _TimerQueue:
    """The timers of one duration: they fire in the order they were set, so a deque and
    one libevent timer serve them all (thousands of long-polls with the same timeout
    cost one small Python object each, not a C event each)."""

    __slots__ = ("seconds", "timers", "cancelled", "handler_id", "event")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.timers: deque[Timer] = deque()
        self.cancelled = 0
        self.handler_id = 0
        self.event = 0

    def maybe_compact(self) -> None:
        if self.cancelled > 64 and self.cancelled * 2 > len(self.timers):
            self.timers = deque(t for t in self.timers if t.fn is not None)
            self.cancelled = 0


class EventLoop:
    """One libevent base and the Python callbacks registered on it."""

    def __init__(self) -> None:
        self.base = ev.event_base_new()
        if not self.base:
            raise OSError("event_base_new failed")
        self._handlers: dict[int, tuple[Callable[[], None], bool]] = {}
        self._events: dict[int, int] = {}
        self._ids = itertools.count(1)
        self._timer_queues: dict[float, _TimerQueue] = {}
        self._fatal: BaseException | None = None
        self._thread_id: int | None = None
        self._stopping = False
        self._callbacks_run = 0  # callbacks of the current event_base_loop call
        self._waiting = False  # in the GIL-free wait (run)
        self._event_cb = ev.event_callback_fn(self._on_event)  # lives as long as the loop
        # call_soon: a queue, an event to activate from the loop thread, and a
        # socketpair that other threads write to (libevent here is not thread-safe).
        self._soon: deque[Callable[[], None]] = deque()
        self._after_callback: list[Callable[[], None]] = []
        self._soon_id = next(self._ids)
        self._handlers[self._soon_id] = (self._run_soon, True)
        self._soon_event = ev.event_new(self.base, -1, ev.EV_PERSIST, self._event_cb, self._soon_id)
        self._events[self._soon_id] = self._soon_event
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.add_reader(self._wake_r.fileno(), self._drain_wakeups)
        self._signal_handlers: dict[int, Callable[[], None]] = {}

    # -- callbacks from C ---------------------------------------------------------

    def _on_event(self, fd: int, what: int, arg: int | None) -> None:
        self._callbacks_run += 1
        if self._waiting and self._callbacks_run == BURST_CALLBACKS:
            # Many callbacks in the GIL-free wait: a burst; run this one, then let
            # the GIL-keeping call run the rest (``run``).
            ev.event_base_loopbreak(self.base)
        try:
            entry = self._handlers.get(arg or 0)
            if entry is None:
                return
            fn, persistent = entry
            if not persistent:
                self._drop(arg or 0, self._events.get(arg or 0, 0))
            fn()
        except (SystemExit, KeyboardInterrupt) as exc:
            self._fatal = exc
            ev.event_base_loopbreak(self.base)
        except BaseException:
            log.exception("error in event loop callback")
        finally:
            if self._after_callback:
                self._run_after_callback()

    def after_callback(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the callback running now returns, before the loop gives the
        GIL up (loop thread only): what is run here costs the loop no second turn for
        the GIL, as ``call_soon`` would."""
        self._after_callback.append(fn)

    def _run_after_callback(self) -> None:
        pending, self._after_callback = self._after_callback, []
        for fn in pending:
            try:
                fn()
            except Exception:
                log.exception("error in after_callback function")

    def _drop(self, handler_id: int, event: int) -> None:
        self._handlers.pop(handler_id, None)
        self._events.pop(handler_id, None)
        if event:
            ev.event_free(event)  # event_free also removes a pending event

    # -- timers ---------------------------------------------------------------------

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Timer:
        """Call ``fn`` once after ``seconds`` (loop thread only)."""
        seconds = max(0.0, float(seconds))
        queue = self._timer_queues.get(seconds)
        if queue is None:
            queue = self._timer_queues[seconds] = _TimerQueue(seconds)
            queue.handler_id = next(self._ids)
            queue.event = ev.event_new(self.base, -1, 0, self._event_cb, queue.handler_id)
            if not queue.event:
                raise MemoryError("event_new failed")
            self._handlers[queue.handler_id] = (partial(self._fire_timers, queue), True)
            self._events[queue.handler_id] = queue.event
        timer = Timer(time.monotonic() + seconds, fn, queue)
        if not queue.timers:
            ev.event_add(queue.event, byref(ev.timeval.of(seconds)))
        queue.timers.append(timer)
        return timer

    def _fire_timers(self, queue: _TimerQueue) -> None:
        # Timers due within a small slack fire together (at most 2% or 50 ms early):
        # long-polls parked in a burst then time out in one batch and share a render.
        # A wave of timers runs for at most TIMER_BUDGET per loop turn; the rest go on
        # at the next turn, after other connections are served.
        started = time.monotonic()
        now = started + min(0.05, queue.seconds * 0.02) + 0.0005
        budget_end = started + TIMER_BUDGET
        try:
            # queue.timers is read afresh each time: a callback may compact it.
            while queue.timers and queue.timers[0].deadline <= now:
                if time.monotonic() > budget_end:
                    break
                timer = queue.timers.popleft()
                fn, timer.fn = timer.fn, None
                if fn is None:
                    queue.cancelled -= 1
                    continue
                try:
                    fn()
                except Exception:
                    log.exception("error in timer callback")
        finally:
            timers = queue.timers
            if timers:
                delay = max(0.0, timers[0].deadline - time.monotonic())
                ev.event_add(queue.event, byref(ev.timeval.of(delay)))
            else:
                self._timer_queues.pop(queue.seconds, None)
                self._drop(queue.handler_id, queue.event)

    # -- readers --------------------------------------------------------------------

    def add_reader(self, fd: int, fn: Callable[[], None]) -> Callable[[], None]:
        """Call ``fn`` whenever ``fd`` is readable; returns a function that stops it."""
        return self._watch_fd(fd, ev.EV_READ | ev.EV_PERSIST, fn, True)

    def when_writable(self, fd: int, fn: Callable[[], None]) -> Callable[[], None]:
        """Call ``fn`` once when ``fd`` becomes writable (a non-blocking connect ends)."""
        return self._watch_fd(fd, ev.EV_WRITE, fn, False)

    def watch_io(self, fd: int, what: int, fn: Callable[[], None]) -> IoWatch:
        """An event on ``fd`` for ``what`` (EV_READ, EV_WRITE, EV_CLOSED; with EV_PERSIST
        it stays until closed, else it is freed once it fires), created stopped:
        ``start()`` it."""
        handler_id = next(self._ids)
        event = ev.event_new(self.base, fd, what, self._event_cb, handler_id)
        if not event:
            raise OSError(f"event_new failed for fd {fd}")
        self._handlers[handler_id] = (fn, bool(what & ev.EV_PERSIST))
        self._events[handler_id] = event
        return IoWatch(self, event, handler_id)

    def _watch_fd(self, fd: int, what: int, fn: Callable[[], None],
                  persistent: bool) -> Callable[[], None]:
        watch = self.watch_io(fd, what | (ev.EV_PERSIST if persistent else 0), fn)
        watch.start()
        return watch.close

    # -- call_soon ------------------------------------------------------------------

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop thread at its next turn; safe from any thread."""
        self._soon.append(fn)
        if threading.get_ident() == self._thread_id:
            ev.event_active(self._soon_event, ev.EV_READ, 0)
        else:
            try:
                self._wake_w.send(b"\0")
            except (BlockingIOError, OSError):
                pass  # a wake-up is already pending

    def _run_soon(self) -> None:
        for _ in range(len(self._soon)):
            fn = self._soon.popleft()
            try:
                fn()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                log.exception("error in call_soon callback")

    def _drain_wakeups(self) -> None:
        data = b""
        try:
            while chunk := self._wake_r.recv(4096):
                data += chunk
        except (BlockingIOError, InterruptedError):
            pass
        # call_soon writes zero bytes; Python's C-level signal handler writes the
        # signal number (signal.set_wakeup_fd).
        for signum in {b for b in data if b}:
            handler = self._signal_handlers.get(signum)
            if handler is not None:
                handler()
        self._run_soon()

    # -- signals --------------------------------------------------------------------

    def add_signal_handler(self, signum: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop when ``signum`` arrives (main thread only).

        Python's C handler writes the signal number to the wake-up socket, so the
        loop wakes even while it sleeps inside libevent.
        """
        self._signal_handlers[signum] = fn
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signum, lambda sig, frame: None)

    # -- running --------------------------------------------------------------------

    def run(self) -> None:
        """Run until ``stop()``; re-raise a fatal exception from a callback."""
        self._thread_id = threading.get_ident()
        self._fatal = None
        self._stopping = False
        try:
            while not self._stopping:
                # The events ready now, GIL kept: a callback gives the interpreter
                # away only as any Python code does (switch interval), instead of
                # each callback queueing for it again on entry (ctypes' callbacks
                # take the GIL, and with CPU-bound views running every take waits).
                self._callbacks_run = 0
                self._turn(ev.event_base_loop_ready, ev.EVLOOP_NONBLOCK)
                if self._stopping or self._callbacks_run:
                    continue
                # Nothing ready: wait in epoll without the GIL while events come a
                # few at a time (each callback takes the GIL once, as ctypes does;
                # returning from the wait costs one more take).  The
                # BURST_CALLBACKS-th callback breaks the wait: the rest of a burst
                # (a fan-out's writes) is run by the GIL-keeping call above, not one
                # take per event.
                self._waiting = True
                self._callbacks_run = 0
                try:
                    self._turn(ev.event_base_loop_waiting, 0)
                finally:
                    self._waiting = False
        finally:
            self._stopping = False
        if self._fatal is not None:
            fatal, self._fatal = self._fatal, None
            raise fatal

    def _turn(self, loop_fn: Callable[[int, int], int], flags: int) -> None:
        if loop_fn(self.base, flags) < 0:
            raise OSError("event_base_loop failed")
        if self._fatal is not None or ev.event_base_got_exit(self.base):
            self._stopping = True

    def stop(self, after: float = 0.0) -> None:
        """Leave ``run()`` (after ``after`` seconds, letting pending writes go out)."""
        if after > 0:
            ev.event_base_loopexit(self.base, byref(ev.timeval.of(after)))
        else:
            self._stopping = True
            ev.event_base_loopbreak(self.base)

    def close(self) -> None:
        """Free every event and the base (after run() has returned)."""
        if self._signal_handlers:
            signal.set_wakeup_fd(-1)
            for signum in self._signal_handlers:
                signal.signal(signum, signal.SIG_DFL)
        for handler_id, event in list(self._events.items()):
            self._drop(handler_id, event)
        ev.event_base_free(self.base)
        self.base = None
        self._wake_r.close()
        self._wake_w.close()


"""Hands deliveries out in slices, one per loop turn: the one slicer of the hub, for
long-poll waiters and event-stream followers alike.

A slice ends after about ``FAN_OUT_SLICE_SECONDS`` of work (renders and writes
included) or ``FAN_OUT_SLICE`` calls, whichever comes first, and always makes one
call; the rest goes on at the loop's next turn, after pending writes, so one large
fan-out cannot keep the loop from other requests however much each answer costs.
One queue for every fan-out job: a follower never gets a later batch before an
earlier one.  Without a scheduler (no server in this process) everything is handed
out at once, by whichever thread started it (one at a time, in order).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from comet_server.push.events import Delivery

log = logging.getLogger(__name__)

Scheduler = Callable[[Callable[[], None]], object]
FAN_OUT_SLICE = 500  # at most this many calls per loop turn...
FAN_OUT_SLICE_SECONDS = 0.02  # ...and no more once a slice has worked this long


class Target(Protocol):
    """A waiter or a follower, as the slicer hands it its delivery."""

    def take(self) -> Callable[[Any], None] | None:
        """The function to call with the delivery now (``None``: gone meanwhile)."""


@dataclass(slots=True, eq=False)
class FanOut:
    """Jobs timed together: ``on_fanout`` is told the seconds since ``since`` (when
    their events arrived, ``perf_counter``) once the last of them is done."""

    since: float
    jobs: int = 0  # not done yet


@dataclass(slots=True, eq=False)
class Batch:
    """One fan-out job: each target is called with ``delivery`` (``None``: "you may
    have missed events").  With a ``fanout`` the job is timed and its calls with events
    counted (``delivered_total``); without, neither (``wake_all``, the history).
    ``log_errors``: a failing call is logged and the rest go on (event streams); else
    the first error is raised to whoever runs the slice, once the others were called."""

    targets: Sequence[Target]
    delivery: Delivery | None
    fanout: FanOut | None = None
    log_errors: bool = False
    next: int = 0  # the first target not called yet

    def __post_init__(self) -> None:
        if self.fanout is not None:
            self.fanout.jobs += 1


class Slicer:
    """The queue of fan-out jobs and the slice that works through it."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock  # the hub's: jobs are queued in the same hold as the matching
        self._jobs: deque[Batch] = deque()
        self._running = False  # a slice runs or is scheduled
        self._after_io: Scheduler | None = None
        self._generation = 0  # a slice scheduled under another scheduler does not run
        self.delivered_total = 0  # calls with events of timed jobs
        self.on_fanout: Callable[[float], None] | None = None

    def set_after_io(self, after_io: Scheduler | None) -> None:
        """Continue slices through ``after_io`` (``None``: no server, no slicing).
        Call under the lock; a slice the old scheduler still holds is forgotten and
        its jobs go on with the next queued."""
        self._after_io = after_io
        self._generation += 1
        self._running = False

    def queue(self, jobs: list[Batch]) -> bool:
        """Queue ``jobs`` behind the others (call under the lock).  True: the caller
        runs ``run()`` once it released the lock."""
        self._jobs.extend(jobs)
        if self._running or not self._jobs:
            return False
        self._running = True
        return True

    def run(self) -> None:
        """One slice: call targets until the queue is empty or the slice is over."""
        after_io, generation = self._after_io, self._generation
        clock, limit = time.perf_counter, FAN_OUT_SLICE
        deadline = clock() + FAN_OUT_SLICE_SECONDS
        jobs = self._jobs
        calls = delivered = 0
        error: Exception | None = None
        try:
            while True:
                with self._lock:
                    if generation != self._generation:
                        return  # the scheduler changed: the next queued goes on
                    if not jobs:
                        self._running = False
                        return
                    job = jobs[0]
                targets, delivery, fanout = job.targets, job.delivery, job.fanout
                counted = fanout is not None and delivery is not None
                for index in range(job.next, len(targets)):
                    if calls and after_io is not None and (calls >= limit
                                                           or clock() >= deadline):
                        job.next = index
                        after_io(lambda: self._resume(generation))
                        return
                    calls += 1
                    call = targets[index].take()
                    if call is None:  # cancelled or unfollowed while waiting for its slice
                        continue
                    delivered += counted
                    try:
                        call(delivery)
                    except Exception as exc:
                        if job.log_errors:
                            log.exception("error delivering to an event stream")
                        elif error is None:
                            error = exc
                with self._lock:
                    jobs.popleft()
                if fanout is not None:
                    fanout.jobs -= 1
                    if not fanout.jobs and self.on_fanout is not None:
                        self.on_fanout(clock() - fanout.since)
        finally:
            self.delivered_total += delivered
            if error is not None:
                raise error

    def _resume(self, generation: int) -> None:
        if generation == self._generation:
            self.run()

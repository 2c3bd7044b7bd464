"""A bounded pool of threads that runs application code beside the event loop.

The loop thread does I/O, framing, timers and fan-out; anything that runs the
application (a WSGI call, a body's iteration, a renderer, ``request_finished``) is a
*job* handed to ``WorkerPool.submit``.  The job runs on a pool thread and its
``Outcome`` goes to ``done`` **on the loop thread**: completions are queued and the
loop is woken once per burst (``loop.call_soon``), however many finish together.
Nothing a job does may touch a socket, a timer or libevent; it produces values
(body chunks, the next wait) that the loop applies.

Admission: a new request (``admit=True``) waits in a queue of at most ``queue_depth``
jobs; past it ``submit`` refuses and the caller answers 503.  Work of a request
already admitted (its next step, a render, closing it) is never refused and goes
before new requests: finishing what is started frees its client soonest.

``threads=0`` runs every job at once on the calling (loop) thread, ``done`` included:
the server's behaviour before the pool existed.

Knows nothing of HTTP, WSGI or Django.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from comet_server.loop import EventLoop

log = logging.getLogger("comet_server.serving.pool")

# How often the GIL is handed between threads (Python's default is 5 ms): a thread
# that runs a pure-Python view for long gives the loop the GIL back at most this
# late after the loop asks for it.  Measured in docs/threads.md.
SWITCH_INTERVAL = 0.001


class Outcome:
    """What a job ended with: its value, or the exception it raised."""

    __slots__ = ("value", "error")

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error

    def exc_info(self) -> tuple[Any, Any, Any]:
        error = self.error
        return (type(error), error, error.__traceback__) if error is not None else (None,) * 3


_local = threading.local()


def in_pool_thread() -> bool:
    """Whether the calling thread is one of a pool's (not the loop's, not another)."""
    return getattr(_local, "pool", False)


Job = Callable[[], Any]
Done = Callable[[Outcome], None]


def run_job(job: Job) -> Outcome:
    """Run ``job`` here; an exception (SystemExit included: a view that calls sys.exit
    does not stop the server) becomes the outcome."""
    try:
        return Outcome(job())
    except (Exception, SystemExit) as exc:
        return Outcome(error=exc)


class _Item:
    __slots__ = ("job", "done", "label", "queued_at", "started", "thread", "reported")

    def __init__(self, job: Job, done: Done, label: str) -> None:
        self.job = job
        self.done = done
        self.label = label
        self.queued_at = time.monotonic()
        self.started = 0.0
        self.thread = 0
        self.reported = False


class WorkerPool:
    """``threads`` threads taking jobs from a queue bounded at ``queue_depth``."""

    def __init__(self, loop: EventLoop, threads: int, queue_depth: int,
                 *, name: str = "comet-app") -> None:
        self.loop = loop
        self.threads = threads
        self.queue_depth = queue_depth
        self.inline = threads == 0
        self._new: deque[_Item] = deque()  # new requests (bounded)
        self._admitted: deque[_Item] = deque()  # work of admitted requests (first)
        self._cond = threading.Condition(threading.Lock())
        self._completed: list[tuple[_Item, Outcome]] = []
        self._wake_pending = False
        self._stopping = False
        self.busy = 0
        self.running: dict[int, _Item] = {}  # by the id of the thread running it
        self.refused_total = 0
        self.jobs_total = 0
        self._waits: list[float] = []  # seconds queued, folded by the metrics
        self._workers: list[threading.Thread] = []
        self._ids = itertools.count(1)
        self._name = name
        if threads:
            if sys.getswitchinterval() > SWITCH_INTERVAL:
                sys.setswitchinterval(SWITCH_INTERVAL)
            for _ in range(threads):
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"{name}-{next(self._ids)}")
                thread.start()
                self._workers.append(thread)

    # -- the API the server uses ------------------------------------------------------

    def submit(self, job: Job, done: Done, *, admit: bool = True, label: str = "") -> bool:
        """Run ``job`` on a pool thread, then ``done(outcome)`` on the loop thread.

        ``admit``: a new request, refused (False, nothing runs) when ``queue_depth``
        jobs wait already; else the continuation of admitted work, never refused.
        ``label`` names the job in the slow-job log.  Inline (threads=0) both run now.
        """
        if self.inline:
            self.jobs_total += 1
            done(run_job(job))
            return True
        item = _Item(job, done, label)
        with self._cond:
            if admit:
                if len(self._new) >= self.queue_depth or self._stopping:
                    self.refused_total += 1
                    return False
                self._new.append(item)
            else:
                self._admitted.append(item)
            self.jobs_total += 1
            self._cond.notify()
        return True

    @property
    def queued(self) -> int:
        """Jobs waiting for a thread."""
        return len(self._new) + len(self._admitted)

    def take_waits(self) -> list[float]:
        """The seconds each job started since the last call waited for a thread."""
        waits, self._waits = self._waits, []
        return waits

    def slow(self, threshold: float) -> list[tuple[str, float, str]]:
        """Jobs running for more than ``threshold`` seconds not reported before, each
        once: ``(label, seconds, the stack of its thread)``."""
        now = time.monotonic()
        found = []
        frames = None
        for ident, item in list(self.running.items()):
            if item.reported or now - item.started < threshold:
                continue
            item.reported = True
            if frames is None:
                frames = sys._current_frames()
            frame = frames.get(ident)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
            found.append((item.label, now - item.started, stack))
        return found

    def close(self, timeout: float = 0.0) -> bool:
        """Stop taking new requests; let the threads finish the queued jobs and leave,
        waiting up to ``timeout`` seconds.  True if every thread left."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._workers)

    # -- the threads ----------------------------------------------------------------

    def _work(self) -> None:
        _local.pool = True
        cond = self._cond
        running = self.running
        ident = threading.get_ident()
        while True:
            with cond:
                while not self._admitted and not self._new:
                    if self._stopping:
                        return
                    cond.wait()
                item = self._admitted.popleft() if self._admitted else self._new.popleft()
                self.busy += 1
            item.started = time.monotonic()
            item.thread = ident
            self._waits.append(item.started - item.queued_at)
            running[ident] = item
            outcome = run_job(item.job)
            del running[ident]
            with cond:
                self.busy -= 1
                self._completed.append((item, outcome))
                wake = not self._wake_pending
                self._wake_pending = True
            if wake:
                self.loop.call_soon(self._complete)
            del item, outcome

    def _complete(self) -> None:
        """On the loop: hand every completed job's outcome to its ``done``."""
        with self._cond:
            completed, self._completed = self._completed, []
            self._wake_pending = False
        for item, outcome in completed:
            try:
                item.done(outcome)
            except Exception:
                log.exception("error applying a job's outcome")

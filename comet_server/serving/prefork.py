"""Pre-fork: N worker processes serving one listening socket, supervised.

The master forks the workers after the application is loaded, then only watches, as
gunicorn's arbiter does.  It sleeps in ``poll()`` on a self-pipe (``signal.
set_wakeup_fd``: a signal wakes it at once) and on one heartbeat pipe per worker:

* a worker that dies is replaced (after a pause when workers keep dying at start);
* a worker whose last heartbeat is older than ``worker_timeout`` (its event loop is
  blocked, e.g. by a view sleeping) is killed with SIGKILL and replaced;
* SIGTERM/SIGINT stop every worker gracefully (each drains its parked requests; a
  second one stops them at once; SIGKILL after ``shutdown_grace`` + 3 s);
* SIGHUP starts fresh workers, then retires the old ones gracefully.

Workers beat from a timer on their loop and leave when the master dies
(``comet_server.serving.heartbeat``).  They share events through the broker (Redis).
"""

from __future__ import annotations

import enum
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from comet_server.serving.config import ServerConfig
from comet_server.serving.heartbeat import Heartbeat, set_parent_death_signal
from comet_server.serving.metrics import SnapshotStore

# What a worker runs after the fork: serve the shared socket until drained, calling
# ``on_start(server)`` once its server exists (the heartbeat starts there).
ServeWorker = Callable[[socket.socket, Callable[[object], None]], None]

log = logging.getLogger("comet_server.serving.prefork")

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
FAST_DEATH = 2.0  # a worker dying sooner than this after its start died "at start"
FAST_DEATHS_BEFORE_PAUSE = 5
PAUSE = 2.0  # seconds between starts while workers keep dying at start
KILL_AFTER_GRACE = 3.0  # SIGKILL what still runs this long after shutdown_grace


class WorkerState(enum.Enum):
    """Where a worker is, as the master sees it; changed only by ``Worker.enter``."""

    SERVING = "serving"  # counts toward ``workers``
    RETIRING = "retiring"  # SIGHUP replaced it: draining, not replaced when it exits
    HUNG = "hung"  # its heartbeat stopped: killed (SIGKILL), already replaced


# The master's only moves.  A retiring worker may still hang (and is then killed).
WORKER_TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.SERVING: frozenset({WorkerState.RETIRING, WorkerState.HUNG}),
    WorkerState.RETIRING: frozenset({WorkerState.HUNG}),
    WorkerState.HUNG: frozenset(),
}


@dataclass
class Worker:
    pid: int
    started: float
    beat_fd: int  # the master's (read) end of the worker's heartbeat pipe; -1 once closed
    last_beat: float = field(default=0.0)
    state: WorkerState = WorkerState.SERVING

    def enter(self, state: WorkerState) -> None:
        if state not in WORKER_TRANSITIONS[self.state]:
            raise RuntimeError(f"worker {self.pid}: {self.state.name} -> {state.name}")
        self.state = state


class Supervisor:
    """Fork and supervise ``config.workers`` processes, each running ``serve_worker``
    on ``sock`` (the runner decides what a worker builds: its hub, broker, server)."""

    def __init__(self, serve_worker: ServeWorker, sock: socket.socket, *,
                 config: ServerConfig,
                 before_fork: Callable[[], None] | None = None) -> None:
        self.serve_worker = serve_worker
        self.sock = sock
        self.config = config
        self.count = config.workers
        self.timeout = config.worker_timeout
        self.before_fork = before_fork
        self.workers: dict[int, Worker] = {}
        self.by_fd: dict[int, Worker] = {}
        self.stopping = False
        self.pid = os.getpid()
        self._signals: list[int] = []
        self._deadline = 0.0  # stopping: SIGKILL what is left after it
        self._fast_deaths = 0
        self._start_after = 0.0  # no worker starts before this (the pause)
        self._wake_r = self._wake_w = -1
        self._poll = select.poll()

    # -- the master's loop ------------------------------------------------------------

    def run(self, announce: Callable[[int], None] | None = None) -> None:
        # O_NONBLOCK belongs to the socket every worker shares: it must never turn
        # blocking (socket.dup copies the timeout), or a worker freezes in accept().
        self.sock.setblocking(False)
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self._poll.register(self._wake_r, select.POLLIN)
        old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in HANDLED:
            signal.signal(signum, self._note_signal)
        try:
            if announce is not None:
                announce(self.sock.getsockname()[1])
            self._start_missing()
            while self.workers or not self.stopping:
                self._sleep()
                self._handle_signals()
                self._reap()
                self._check_heartbeats()
                self._start_missing()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
        log.info("all workers stopped")

    def _sleep(self) -> None:
        """Wait for a signal, a heartbeat, or the next thing due; read what came."""
        now = time.monotonic()
        due = [w.last_beat + self.timeout for w in self.workers.values()
               if w.state is not WorkerState.HUNG]
        if self.stopping:
            due.append(self._deadline)
        elif len(self._active()) < self.count:
            due.append(self._start_after)
        timeout = max(0.0, min(due, default=now + 1.0) - now)
        if self._signals:
            timeout = 0.0
        try:
            ready = self._poll.poll(timeout * 1000 + 1)  # +1 ms: wake past the moment
        except InterruptedError:
            ready = []
        now = time.monotonic()
        for fd, _ in ready:
            if fd == self._wake_r:
                _drain(fd)  # the signals themselves are in self._signals
                continue
            worker = self.by_fd.get(fd)
            if worker is None:
                continue
            if _drain(fd):
                worker.last_beat = now
            else:  # EOF: the worker is gone (SIGCHLD tells the rest)
                self._close_beat(worker)

    def _note_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _handle_signals(self) -> None:
        signals, self._signals = self._signals, []
        for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT):
                if self.stopping:
                    log.warning("stopping %d workers now", len(self.workers))
                    self._kill_all(signal.SIGTERM)  # their second: they leave at once
                    continue
                log.info("stopping %d workers", len(self.workers))
                self.stopping = True
                self._kill_all(signal.SIGTERM)
                self._deadline = time.monotonic() + self.config.shutdown_grace \
                    + KILL_AFTER_GRACE
            elif signum == signal.SIGHUP and not self.stopping:
                old = self._active()
                log.info("SIGHUP: replacing %d workers", len(old))
                for _ in range(self.count):
                    self.spawn()
                for worker in old:
                    worker.enter(WorkerState.RETIRING)
                    self._kill(worker.pid, signal.SIGTERM)
        if self.stopping and time.monotonic() >= self._deadline and self.workers:
            log.warning("%d workers still running %.0fs after SIGTERM; killing them",
                        len(self.workers), self.config.shutdown_grace + KILL_AFTER_GRACE)
            self._kill_all(signal.SIGKILL)
            self._deadline = time.monotonic() + 1.0  # not again at every wake-up

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            self._close_beat(worker)
            if self.config.metrics_dir:  # its numbers leave the scrapes
                SnapshotStore.forget(self.config.metrics_dir, pid)
            if self.stopping or worker.state is WorkerState.RETIRING:
                continue
            code = os.waitstatus_to_exitcode(status)
            now = time.monotonic()
            if worker.state is WorkerState.HUNG:
                log.info("hung worker %d is gone", pid)
                continue  # replaced when killed; it had started fine: no pause for it
            log.warning("worker %d died (exit %s); starting another", pid, code)
            if now - worker.started < FAST_DEATH:
                self._fast_deaths += 1
            else:
                self._fast_deaths = 0
            if self._fast_deaths >= FAST_DEATHS_BEFORE_PAUSE:
                log.error("workers keep dying at start; waiting %.0fs before the next one",
                          PAUSE)
                self._start_after = now + PAUSE

    def _check_heartbeats(self) -> None:
        now = time.monotonic()
        for worker in list(self.workers.values()):
            silent = now - worker.last_beat
            if worker.state is WorkerState.HUNG or silent < self.timeout:
                continue
            log.error("worker %d hung: no heartbeat for %.1fs (worker_timeout %gs); "
                      "killing it (SIGKILL)", worker.pid, silent, self.timeout)
            worker.enter(WorkerState.HUNG)
            self._kill(worker.pid, signal.SIGKILL)

    def _active(self) -> list[Worker]:
        """The workers serving for good: not retiring, not killed as hung."""
        return [w for w in self.workers.values() if w.state is WorkerState.SERVING]

    def _start_missing(self) -> None:
        if self.stopping or time.monotonic() < self._start_after:
            return
        for _ in range(self.count - len(self._active())):
            self.spawn()

    def _close_beat(self, worker: Worker) -> None:
        if worker.beat_fd >= 0:
            self._poll.unregister(worker.beat_fd)
            self.by_fd.pop(worker.beat_fd, None)
            os.close(worker.beat_fd)
            worker.beat_fd = -1

    def _kill(self, pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    def _kill_all(self, signum: int) -> None:
        for pid in list(self.workers):
            self._kill(pid, signum)

    # -- forking ----------------------------------------------------------------------

    def spawn(self) -> None:
        if self.before_fork is not None:
            self.before_fork()
        beat_r, beat_w = os.pipe()
        pid = os.fork()
        if pid:
            os.close(beat_w)
            os.set_blocking(beat_r, False)
            now = time.monotonic()
            worker = Worker(pid, now, beat_r, last_beat=now)
            self.workers[pid] = self.by_fd[beat_r] = worker
            self._poll.register(beat_r, select.POLLIN)
            return
        # -- in the worker ------------------------------------------------------------
        code = 0
        try:
            for signum in HANDLED:
                signal.signal(signum, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            # SIGTERM (a drain) when the master dies; it may have died before this line.
            set_parent_death_signal(signal.SIGTERM)
            if os.getppid() != self.pid:
                os._exit(0)
            os.close(beat_r)
            for fd in (self._wake_r, self._wake_w, *self.by_fd):
                os.close(fd)
            heartbeat = Heartbeat(beat_w, self.timeout, self.pid)
            sock = self.sock.dup()
            self.sock.close()
            self.serve_worker(sock, heartbeat.start)  # type: ignore[arg-type]
        except BaseException:
            log.exception("worker %d failed", os.getpid())
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


def _drain(fd: int) -> bool:
    """Read what a non-blocking pipe holds; False at end of file."""
    got = False
    while True:
        try:
            data = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            return True
        if not data:
            return got
        got = True

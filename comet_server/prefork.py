"""Pre-fork: N worker processes serving one listening socket, supervised.

The master forks the workers after the application is loaded, then only watches:
a worker that dies is replaced (with a pause if workers keep dying at once),
SIGTERM/SIGINT stop every worker gracefully, SIGHUP starts fresh workers and then
retires the old ones gracefully.  Workers share events through the broker (Redis).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

from comet_server.server import ServerConfig, WSGIApp

log = logging.getLogger("comet_server.prefork")


class Supervisor:
    """Fork and supervise ``workers`` processes serving ``app`` on ``sock``."""

    def __init__(self, app: WSGIApp, sock: socket.socket, *, config: ServerConfig,
                 workers: int, before_fork: Callable[[], None] | None = None) -> None:
        self.app = app
        self.sock = sock
        self.config = config
        self.count = workers
        self.before_fork = before_fork
        self.workers: dict[int, float] = {}  # pid -> start time
        self.retiring: set[int] = set()
        self.stopping = False
        self._signals: list[int] = []
        self._deadline = 0.0

    def run(self, announce: Callable[[int], None] | None = None) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, self._note_signal)
        # O_NONBLOCK belongs to the socket every worker shares: it must never turn
        # blocking (socket.dup copies the timeout), or a worker freezes in accept().
        self.sock.setblocking(False)
        if announce is not None:
            announce(self.sock.getsockname()[1])
        for _ in range(self.count):
            self.spawn()
        fast_deaths = 0
        while self.workers:
            self._handle_signals()
            for pid, status in self._reap():
                started = self.workers.pop(pid, 0.0)
                retired = pid in self.retiring
                self.retiring.discard(pid)
                if self.stopping or retired:
                    continue
                code = os.waitstatus_to_exitcode(status)
                log.warning("worker %d died (exit %s); starting another", pid, code)
                fast_deaths = fast_deaths + 1 if time.monotonic() - started < 2 else 0
                if fast_deaths >= 5:
                    log.error("workers keep dying at start; waiting before the next one")
                    time.sleep(2)
                self.spawn()
            if self.workers:
                time.sleep(0.2)  # a signal cuts it short (its handler only takes note)
        log.info("all workers stopped")

    def _note_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _handle_signals(self) -> None:
        signals, self._signals = self._signals, []
        for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT) and not self.stopping:
                log.info("stopping %d workers", len(self.workers))
                self.stopping = True
                self._kill_all(signal.SIGTERM)
                self._deadline = time.monotonic() + self.config.shutdown_grace + 3
            elif signum == signal.SIGHUP and not self.stopping:
                old = set(self.workers)
                log.info("SIGHUP: replacing %d workers", len(old))
                for _ in range(self.count):
                    self.spawn()
                self.retiring |= old
                for pid in old:
                    self._kill(pid, signal.SIGTERM)
        if self.stopping and time.monotonic() > self._deadline:
            self._kill_all(signal.SIGKILL)

    def _reap(self) -> list[tuple[int, int]]:
        reaped = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            reaped.append((pid, status))
        return reaped

    def _kill(self, pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    def _kill_all(self, signum: int) -> None:
        for pid in list(self.workers):
            self._kill(pid, signum)

    def spawn(self) -> None:
        if self.before_fork is not None:
            self.before_fork()
        pid = os.fork()
        if pid:
            self.workers[pid] = time.monotonic()
            return
        # -- in the worker ------------------------------------------------------------
        code = 0
        try:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            from comet_server.hub import set_hub
            from comet_server.runner import serve_socket

            set_hub(None)  # a fresh hub and broker connection of the worker's own
            sock = self.sock.dup()
            self.sock.close()
            serve_socket(self.app, sock, config=self.config)
        except BaseException:
            log.exception("worker %d failed", os.getpid())
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

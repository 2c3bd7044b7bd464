"""Accepting connections within bounds: a cap per process, a cap per client, and no
busy loop when the process runs out of file descriptors.

At the process cap the listener pauses (the kernel's backlog holds newcomers) and
resumes when a connection closes.  At ``EMFILE``/``ENFILE`` it pauses for a moment
and logs at most one line per second, instead of spinning on a listener that stays
readable.  A client over its own cap gets a short ``503`` and is closed.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from comet_server import ctypes_event as ev
from comet_server.protocol import http1

if TYPE_CHECKING:
    from comet_server.loop import EventLoop

log = logging.getLogger("comet_server.protocol.acceptor")

ACCEPTS_PER_TURN = 64
FD_PAUSE = 0.25  # seconds the listener rests after running out of descriptors
_OUT_OF_FDS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_BUSY = http1.error_response((1, 1), 503, "Service Unavailable")

OnConnection = Callable[[socket.socket, tuple[str, str], str], None]


class RateLimitedLog:
    """At most one log line per ``interval`` for one recurring condition, with a count
    of the occurrences it did not log."""

    __slots__ = ("message", "interval", "last", "suppressed")

    def __init__(self, message: str, interval: float = 1.0) -> None:
        self.message, self.interval, self.last, self.suppressed = message, interval, 0.0, 0

    def __call__(self, *args: object) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more since the last line)" if self.suppressed else ""
        log.warning(self.message + more, *args)
        self.last, self.suppressed = now, 0


class Acceptor:
    """Accept on one listening socket and hand each connection to ``on_connection``."""

    def __init__(self, loop: EventLoop, sock: socket.socket, on_connection: OnConnection, *,
                 max_connections: int, max_per_client: int,
                 proxies: frozenset[str] = frozenset()) -> None:
        self.loop = loop
        self.sock = sock
        self.on_connection = on_connection
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.proxies = proxies  # trusted proxies: their clients are counted per request
        self.open = 0  # connections accepted and not yet closed
        self.accepted_total = 0  # connections taken (not those turned away)
        self.per_client: dict[str, int] = {}
        self.hits = {"max_connections": 0, "max_per_client": 0, "out_of_fds": 0}
        self.paused = False
        self.closed = False
        sock.setblocking(False)
        self._watch = loop.watch_io(sock.fileno(), ev.EV_READ | ev.EV_PERSIST, self._accept)
        self._watch.start()
        self._fd_log = RateLimitedLog("accept(): %s; pausing the listener")
        self._cap_log = RateLimitedLog("%d connections open (the cap): pausing the listener")

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            if self.open >= self.max_connections:
                self.hits["max_connections"] += 1
                self._cap_log(self.open)
                self._pause()
                return
            try:
                conn, address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_FDS:
                    self.hits["out_of_fds"] += 1
                    self._fd_log(exc.strerror or exc)
                    self._pause()
                    self.loop.call_later(FD_PAUSE, self._resume_after_rest)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue  # that client gave up before we took it
                raise
            client = address[0]
            if self.max_per_client and self.per_client.get(client, 0) >= self.max_per_client \
                    and client not in self.proxies:
                self.hits["max_per_client"] += 1
                self._turn_away(conn)
                continue
            self.open += 1
            self.accepted_total += 1
            self.per_client[client] = self.per_client.get(client, 0) + 1
            conn.setblocking(False)
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass  # not TCP (a test's Unix socket)
            self.on_connection(conn, (client, str(address[1])), client)

    def _turn_away(self, conn: socket.socket) -> None:
        try:
            conn.setblocking(False)
            conn.send(_BUSY)
        except OSError:
            pass
        conn.close()

    def released(self, client: str) -> None:
        """A connection of ``client`` closed."""
        self.open -= 1
        count = self.per_client.get(client, 0) - 1
        if count > 0:
            self.per_client[client] = count
        else:
            self.per_client.pop(client, None)
        if self.paused and self.open < self.max_connections:
            self._resume()

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            self._watch.stop()

    def _resume(self) -> None:
        if self.paused and not self.closed:
            self.paused = False
            self._watch.start()

    def _resume_after_rest(self) -> None:
        if self.open < self.max_connections:
            self._resume()

    def close(self) -> None:
        """Stop accepting for good and close the listening socket."""
        if not self.closed:
            self.closed = True
            self._watch.close()
            self.sock.close()

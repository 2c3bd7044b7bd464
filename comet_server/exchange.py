"""One request and the driving of its WSGI response, parked without a thread.

A plain WSGI iterable is sent at once.  A *comet response* (an iterable with
``comet_coroutine()``, see ``comet_server.waits``) is driven step by step: when it
yields a wait, the connection is parked until a timer fires or the hub hands over
events.  Framing: a body that ends before any wait goes out with Content-Length;
body sent before a wait starts a stream, chunked for HTTP/1.1 and close-delimited for
HTTP/1.0.  Bytes go to the connection (``comet_server.connection``); this module
never touches a socket and knows nothing of Django.
"""

from __future__ import annotations

import enum
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from comet_server import http1
from comet_server.waits import Delivery, Sleep, WaitForEvents

if TYPE_CHECKING:
    from comet_server.connection import HTTPConnection
    from comet_server.hub import Watch
    from comet_server.loop import Timer
    from comet_server.server import CometServer

log = logging.getLogger("comet_server.server")
access_log = logging.getLogger("comet_server.access")

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
               "te", "trailers", "transfer-encoding", "upgrade"}
# What an application may raise without stopping the server: sys.exit() in a view
# is a bug of that view, not a request to stop serving everyone.
APPLICATION_ERRORS = (Exception, SystemExit)
_CHUNK_TYPES = (bytes, bytearray, memoryview)


class Phase(enum.Enum):
    """Where an exchange is; changed only by the exchange itself."""

    RUNNING = "running"  # the application or its coroutine is executing
    PARKED = "parked"  # waiting for a timer or events, no thread held
    DONE = "done"  # answered (or abandoned); nothing more happens


class Exchange:
    """One request on one connection, from the WSGI call to the last byte."""

    __slots__ = (
        "server", "conn", "method", "target", "version", "keep_alive", "code", "status",
        "headers", "result", "coroutine", "pending", "started", "chunked", "phase", "sent",
        "t0", "parked_since", "parked_total", "timer", "watch",
        "stop_answered", "client", "declared", "counted",
    )

    def __init__(self, server: CometServer, conn: HTTPConnection, request: http1.Request,
                 client: str) -> None:
        self.server = server
        self.conn = conn
        self.method = request.method
        self.target = request.target
        self.version = request.version
        self.keep_alive = request.keep_alive
        self.client = client  # the peer, or the client a trusted proxy names
        self.counted = False  # counted against the per-client cap (behind a proxy)
        self.code = 0
        self.status = b""
        self.headers: list[tuple[str, str]] | None = None
        self.declared: int | None = None  # the application's Content-Length
        self.result: Any = None
        self.coroutine: Any = None
        self.pending: list[bytes] = []
        self.started = False  # the response head is sent: a stream
        self.chunked = False
        self.phase = Phase.RUNNING
        self.sent = 0
        self.t0 = time.monotonic()
        self.parked_since = 0.0
        self.parked_total = 0.0
        self.timer: Timer | None = None
        self.watch: Watch | None = None
        self.stop_answered = False

    # -- WSGI call ------------------------------------------------------------------

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.headers is not None:
            raise AssertionError("start_response called twice without exc_info")
        if not isinstance(status, str):
            raise TypeError(f"the WSGI status must be str, not {type(status).__name__}")
        http1.check_status(status)
        declared = None
        for name, value in headers:
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"header {name!r}: names and values must be str")
            lower = name.lower()
            if lower in _HOP_BY_HOP:
                raise ValueError(f"hop-by-hop header {name!r} is the server's business")
            http1.check_header(name, value)
            if lower == "content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise ValueError(f"bad Content-Length {value!r}") from None
        self.declared = declared
        self.status = status.encode("latin-1")
        self.code = int(status[:3])
        self.headers = list(headers)
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable: buffered like yielded data."""
        if not isinstance(data, _CHUNK_TYPES):
            raise TypeError("write() takes bytes")
        if data:
            self.pending.append(bytes(data))

    def run(self, app: WSGIApp, environ: dict) -> None:
        """Call the application and send or park its response."""
        try:
            result = self.result = app(environ, self.start_response)
            factory = None if type(result) is list else getattr(result, "comet_coroutine", None)
            if factory is not None:
                self.coroutine = factory()
                self.step(None)
            else:
                for chunk in self.result:
                    if not isinstance(chunk, _CHUNK_TYPES):
                        raise TypeError("WSGI body chunks must be bytes, "
                                        f"not {type(chunk).__name__}")
                    if chunk:
                        self.pending.append(chunk if type(chunk) is bytes else bytes(chunk))
                self.finish()
        except APPLICATION_ERRORS:
            self.fail("application error")

    # -- driving a comet coroutine ---------------------------------------------------

    def step(self, outcome: Any) -> None:
        """Advance the coroutine until it waits or ends."""
        server = self.server
        while True:
            try:
                item = self.coroutine.send(outcome)
            except StopIteration:
                self.finish()
                return
            outcome = None
            if isinstance(item, _CHUNK_TYPES):
                if item:
                    self.pending.append(item if type(item) is bytes else bytes(item))
            elif server.stopping and isinstance(item, (Sleep, WaitForEvents)):
                # Draining: a long-poll gets one empty answer (clients re-poll); any
                # further wait, or a wait in a stream, ends the response.
                if isinstance(item, WaitForEvents) and not self.started \
                        and not self.stop_answered:
                    self.stop_answered = True
                    outcome = server.empty_delivery()
                    continue
                self.finish()
                return
            elif isinstance(item, WaitForEvents):
                ready = server.hub.events_after(item.channels, item.after)
                if ready:
                    outcome = Delivery(ready)
                    continue
                self.park(item)
                return
            elif isinstance(item, Sleep):
                self.park(item)
                return
            else:
                raise TypeError(f"a comet coroutine yielded {type(item).__name__}, "
                                "expected bytes, Sleep or WaitForEvents")

    def park(self, wait: Sleep | WaitForEvents) -> None:
        """Send what is buffered, then wait without a thread (the hub and the loop
        never call back from inside the registration)."""
        server = self.server
        if self.pending:
            self.flush()
        self.conn.suspend()
        self.parked_since = time.monotonic()
        server.parked += 1
        if isinstance(wait, Sleep):
            self.timer = server.loop.call_later(wait.seconds, self.on_timer)
        else:
            self.watch = server.hub.watch(wait.channels, wait.after, self.on_delivery)
            self.timer = server.loop.call_later(wait.timeout, self.on_timeout)
        self.phase = Phase.PARKED

    def unpark(self) -> None:
        self.server.parked -= 1
        self.parked_total += time.monotonic() - self.parked_since
        self.phase = Phase.RUNNING
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.watch is not None:
            self.server.hub.cancel(self.watch)
            self.watch = None

    def resume(self, outcome: Any) -> None:
        if self.phase is not Phase.PARKED:
            return
        self.unpark()
        try:
            self.step(outcome)
        except APPLICATION_ERRORS:
            self.fail("application error")

    def on_timer(self) -> None:
        self.timer = None
        self.resume(None)

    def on_timeout(self) -> None:
        self.timer = None
        self.resume(self.server.empty_delivery())

    def on_delivery(self, delivery: Delivery) -> None:
        self.watch = None
        self.resume(delivery)

    def stop_waiting(self) -> None:
        """The server drains: a parked long-poll is answered empty, a stream ends."""
        if self.phase is not Phase.PARKED:
            return
        if self.watch is not None:
            self.stop_answered = self.started
            self.resume(self.server.empty_delivery())
        else:  # a timer: go on now; the next wait ends the response
            self.resume(None)

    # -- sending --------------------------------------------------------------------

    def flush(self) -> None:
        """Send buffered body data, starting the stream if needed (never an empty chunk)."""
        if self.headers is None:
            raise AssertionError("the application returned without calling start_response")
        data = b"".join(self.pending)
        self.pending.clear()
        head = b""
        if not self.started:
            declared = self.declared
            self.chunked = declared is None and self.version >= (1, 1)
            if declared is None and not self.chunked:
                self.keep_alive = False  # HTTP/1.0: the stream ends with the connection
            head = http1.response_head(self.version, self.status, self.headers, length=None,
                                       chunked=self.chunked, keep_alive=self.keep_alive_now())
            self.started = True
            self.server.streaming += 1
        if self.method == "HEAD" or not data:
            if head:
                self.conn.write(head)
            return
        self.sent += len(data)
        self.conn.write(head + (http1.chunk(data) if self.chunked else data))

    def keep_alive_now(self) -> bool:
        return self.keep_alive and not self.server.stopping

    def finish(self) -> None:
        """Send the rest of the response and end it."""
        if self.started:
            if self.pending:
                self.flush()
            if self.chunked and self.method != "HEAD":
                self.conn.write(http1.LAST_CHUNK)
            self.server.streaming -= 1
            self.complete()
            return
        if self.headers is None:
            raise AssertionError("the application returned without calling start_response")
        pending = self.pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        declared = self.declared
        code = self.code
        if declared is not None and declared != len(data) and self.method != "HEAD":
            raise ValueError(f"Content-Length {declared} but the body has {len(data)} bytes")
        bodiless = code < 200 or code in (204, 304)
        length = None if declared is not None or bodiless else len(data)
        head = http1.response_head(self.version, self.status, self.headers, length=length,
                                   chunked=False, keep_alive=self.keep_alive_now())
        self.sent = 0 if self.method == "HEAD" or bodiless else len(data)
        self.conn.write(head + data if self.sent else head)
        self.complete()

    def fail(self, why: str) -> None:
        """The application failed: 500 if nothing was sent yet, else cut the connection."""
        log.error("%s: %s %s", why, self.method, self.target.decode("latin-1"),
                  exc_info=sys.exc_info()[0] is not None)
        if self.phase is Phase.DONE:
            return
        if self.phase is Phase.PARKED:
            self.unpark()
        if not self.started:
            body = b"Internal Server Error\n"
            self.conn.write(http1.response_head(
                self.version, b"500 Internal Server Error",
                [("Content-Type", "text/plain; charset=utf-8")], length=len(body),
                chunked=False, keep_alive=self.keep_alive_now()) + body)
            self.code = 500
            self.complete()
        else:
            # The client must not mistake a broken stream for a complete one.
            self.server.streaming -= 1
            self.complete(aborted=True)

    def complete(self, *, aborted: bool = False) -> None:
        """The response is over: free the application's result, let the connection go
        on, and log the line once the connection knows whether it was delivered."""
        self.phase = Phase.DONE
        if self.counted:
            self.server.release_client(self)
        self.close_result()
        if aborted:
            self.conn.close()
            self.log_line(self.code, "aborted")
            return
        self.conn.end(self.keep_alive_now(), self if self.server.access_log else None)

    def delivered(self, delivered: bool) -> None:
        """The connection wrote the whole response (True) or lost the client first."""
        self.log_line(self.code, "" if delivered else "not delivered")

    def log_line(self, code: int, note: str) -> None:
        if not self.server.access_log or not access_log.isEnabledFor(logging.INFO):
            return
        parked = f" parked {self.parked_total * 1000:.0f}ms" if self.parked_total else ""
        access_log.info('%s "%s %s HTTP/%d.%d" %d %d %.1fms%s%s', self.client, self.method,
                        self.target.decode("latin-1"), self.version[0], self.version[1],
                        code, self.sent, (time.monotonic() - self.t0) * 1000, parked,
                        f" {note}" if note else "")

    def close_result(self) -> None:
        coroutine, self.coroutine = self.coroutine, None
        result, self.result = self.result, None
        try:
            if coroutine is not None:
                coroutine.close()
        except Exception:
            log.exception("error closing the comet coroutine")
        if type(result) is list:  # the common plain response: nothing to close
            return
        try:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        except Exception:
            log.exception("error in the response iterable's close()")

    def client_gone(self) -> None:
        """The connection closed under a parked or streaming response."""
        if self.phase is Phase.DONE:
            return
        if self.phase is Phase.PARKED:
            self.unpark()
        if self.started:
            self.server.streaming -= 1
        self.phase = Phase.DONE
        if self.counted:
            self.server.release_client(self)
        self.close_result()
        self.log_line(499, "client gone")

"""The HTTP side of one response: status and headers checked, the body framed, the
access log line written.  No WSGI, no comet, no socket: bytes go to a ``Sink`` (the
connection).

Framing: a body that ends before anything was sent goes out with Content-Length; body
sent before the end starts a stream, chunked for HTTP/1.1 and close-delimited for
HTTP/1.0 (the connection then closes).  ``HEAD`` gets the headers GET would, no body.
A failure before anything was sent is a 500; after, the connection is cut (no last
chunk: the client must not take a broken stream for a complete one).
"""

from __future__ import annotations

import enum
import logging
import re
import time
from time import monotonic
from typing import Protocol

from comet_server.protocol import http1

access_log = logging.getLogger("comet_server.access")

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
               "te", "trailers", "transfer-encoding", "upgrade"}
_ERROR_BODY = b"Internal Server Error\n"


class Sink(Protocol):
    """Where a response's bytes go (``connection.HTTPConnection``)."""

    def write(self, data: bytes) -> None: ...

    def end(self, keep_alive: bool, listener: Responder | None) -> None: ...

    def close(self) -> None: ...


class ResponseObserver(Protocol):
    """Where responses are counted (the server's metrics).  Every response, when it
    ends, adds four numbers to ``batch``: its status, body bytes, seconds from the
    request to its end, and seconds parked; the observer folds them into its counters
    later, many at a time.  A response whose end never reached the client also adds
    one to ``not_delivered``.  (An append per response is the cheapest record: the
    hot path stays a few bytecodes longer, not a function call longer.)"""

    batch: list[float]
    not_delivered: int


class ResponseState(enum.Enum):
    """How far a response got; every change is made by ``Responder`` itself."""

    PENDING = "pending"  # nothing sent yet: still free to answer 500
    STREAMING = "streaming"  # the head and maybe body went out
    COMPLETE = "complete"  # ended normally
    ABORTED = "aborted"  # cut, or the client went away


class Responder:
    """One HTTP response on a sink, from its status line to its access log line."""

    __slots__ = (
        "sink", "method", "target", "version", "keep_alive", "client", "log_enabled",
        "state", "code", "status", "headers", "declared", "chunked", "sent", "t0",
        "parked_total", "observer",
    )

    def __init__(self, sink: Sink, request: http1.Request, client: str, *,
                 log_enabled: bool, observer: ResponseObserver | None = None) -> None:
        self.sink = sink
        self.method = request.method
        self.target = request.target
        self.version = request.version
        self.keep_alive = request.keep_alive  # the server clears it when it drains
        self.client = client
        self.log_enabled = log_enabled
        self.state = ResponseState.PENDING
        self.code = 0
        self.status = b""
        self.headers: list[tuple[str, str]] | None = None
        self.declared: int | None = None  # the application's own Content-Length
        self.chunked = False
        self.sent = 0
        self.t0 = time.monotonic()
        self.parked_total = 0.0  # told by the driver, for the log line and metrics
        self.observer = observer  # None: metrics off

    @property
    def started(self) -> bool:
        return self.state is not ResponseState.PENDING

    @property
    def done(self) -> bool:
        return self.state is ResponseState.COMPLETE or self.state is ResponseState.ABORTED

    def set_status(self, status: str, headers: list[tuple[str, str]]) -> None:
        """Check and keep the status and headers (WSGI's ``start_response``)."""
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

    def send(self, data: bytes) -> None:
        """Send body data now, starting the stream if needed (never an empty chunk)."""
        head = b""
        if self.state is ResponseState.PENDING:
            headers = self._headers()
            self.chunked = self.declared is None and self.version >= (1, 1)
            if self.declared is None and not self.chunked:
                self.keep_alive = False  # HTTP/1.0: the stream ends with the connection
            head = http1.response_head(self.version, self.status, headers, length=None,
                                       chunked=self.chunked, keep_alive=self.keep_alive)
            self.state = ResponseState.STREAMING
        if self.method == "HEAD" or not data:
            if head:
                self.sink.write(head)
            return
        self.sent += len(data)
        self.sink.write(head + (http1.chunk(data) if self.chunked else data))

    def finish(self, data: bytes) -> None:
        """Send the rest of the body and end the response."""
        if self.state is ResponseState.STREAMING:
            if data:
                self.send(data)
            if self.chunked and self.method != "HEAD":
                self.sink.write(http1.LAST_CHUNK)
        else:
            headers = self._headers()
            code = self.code
            self.check_length(data)
            bodiless = code < 200 or code in (204, 304)
            length = None if self.declared is not None or bodiless else len(data)
            head = http1.response_head(self.version, self.status, headers, length=length,
                                       chunked=False, keep_alive=self.keep_alive)
            self.sent = 0 if self.method == "HEAD" or bodiless else len(data)
            self.sink.write(head + data if self.sent else head)
        self.state = ResponseState.COMPLETE
        observer = self.observer
        if observer is not None:
            observer.batch.extend((self.code, self.sent, monotonic() - self.t0,
                                   self.parked_total))
        self.sink.end(self.keep_alive,
                      self if self.log_enabled or observer is not None else None)

    def check_length(self, data: bytes) -> None:
        """Refuse a whole body that contradicts the application's Content-Length."""
        if self.declared is not None and self.declared != len(data) \
                and self.state is ResponseState.PENDING and self.method != "HEAD":
            raise ValueError(f"Content-Length {self.declared} but the body has "
                             f"{len(data)} bytes")

    def fail(self) -> None:
        """The application failed: 500 if nothing was sent yet, else cut the connection."""
        if self.state is ResponseState.PENDING:
            self.code, self.status = 500, b"500 Internal Server Error"
            self.headers, self.declared = [("Content-Type", "text/plain; charset=utf-8")], None
            self.finish(_ERROR_BODY)
        elif self.state is ResponseState.STREAMING:
            self.state = ResponseState.ABORTED
            self.sink.close()
            self._lost("aborted")

    def abort(self, why: str) -> None:
        """Cut a started stream on purpose (a client too slow to read it): no last
        chunk, so the client knows it is incomplete and resumes."""
        if not self.done:
            self.state = ResponseState.ABORTED
            self.sink.close()
            self._lost(why)

    def client_gone(self) -> None:
        """The connection closed before the response was complete."""
        if not self.done:
            self.state = ResponseState.ABORTED
            self.code = 499
            self._lost("client gone")

    def _headers(self) -> list[tuple[str, str]]:
        if self.headers is None:
            raise AssertionError("the application returned without calling start_response")
        return self.headers

    # -- the access log ---------------------------------------------------------------

    def delivered(self, delivered: bool) -> None:
        """The sink wrote the whole response (True) or lost the client first.
        (Every response passes here: as few calls as possible.)"""
        if not delivered and self.observer is not None:
            self.observer.not_delivered += 1
        if self.log_enabled:
            self.log_line("" if delivered else "not delivered", delivered)

    def _lost(self, note: str) -> None:
        """The response ended without its end reaching the client (never completed)."""
        observer = self.observer
        if observer is not None:
            observer.batch.extend((self.code, self.sent, monotonic() - self.t0,
                                   self.parked_total))
            observer.not_delivered += 1
        self.log_line(note, False)

    def log_line(self, note: str, delivered: bool = False) -> None:
        """One access line: client, request, status, body bytes, duration, time parked,
        and a note when the answer did not reach the client.  The target is escaped
        (``escape``): a URL cannot forge a line or send a terminal escape.  The same
        fields go along as ``record.access`` for the JSON log format."""
        if not self.log_enabled or not access_log.isEnabledFor(logging.INFO):
            return
        target = escape(self.target)
        ms = (time.monotonic() - self.t0) * 1000
        parked_ms = self.parked_total * 1000
        parked = f" parked {parked_ms:.0f}ms" if self.parked_total else ""
        access_log.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.1fms%s%s', self.client, self.method, target,
            self.version[0], self.version[1], self.code, self.sent, ms, parked,
            f" {note}" if note else "",
            extra={"access": {
                "client": self.client, "method": self.method, "path": target,
                "version": f"{self.version[0]}.{self.version[1]}", "status": self.code,
                "bytes": self.sent, "duration_ms": round(ms, 3),
                "parked_ms": round(parked_ms, 3), "delivered": delivered,
                **({"note": note} if note else {})}})


_UNSAFE = re.compile(rb'[^\x21-\x7e]|["\\]')


def escape(raw: bytes) -> str:
    """Bytes of a request (its target, a header value) as one safe line of text:
    control characters, spaces, quotes, backslashes and non-ASCII bytes become
    ``\\xNN`` escapes, so nothing a client sends can split or forge a log line."""
    if _UNSAFE.search(raw) is None:
        return raw.decode("ascii")
    return _UNSAFE.sub(lambda m: b"\\x%02x" % m.group()[0], raw).decode("ascii")

"""One client connection: its socket on the loop, its deadlines, its write buffer.

The connection reads bytes, hands them to ``http1.RequestReader``, and passes each
complete request to the server's handler (an ``Exchange``), one at a time: while a
response is being produced (parked, streaming, or still being written) the
connection stops reading, so a pipelining or flooding client cannot make it buffer
more than one parsed piece, and it watches only for the peer closing (``EV_CLOSED``),
so a client that goes away is noticed at once whatever its buffers hold.

Deadlines, by state: a whole request head within ``head_timeout`` of its first byte
(of the accept, for a new connection); a body at ``min_body_rate`` or better; an idle
keep-alive connection closed after ``keepalive_timeout``; a reply the client does
not read for ``keepalive_timeout`` is cut.  A parked request has no deadline here:
its wait has its own timeout.  Knows nothing of WSGI or Django.
"""

from __future__ import annotations

import enum
import logging
import math
import select
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from comet_server import ctypes_event as ev
from comet_server.protocol import http1

if TYPE_CHECKING:
    from comet_server.loop import EventLoop, IoWatch, Timer

log = logging.getLogger("comet_server.protocol.connection")

RECV_SIZE = 64 * 1024
A = TypeVar("A")
R = TypeVar("R")
LINGER_SECONDS = 2.0  # after our FIN, how long unread input is drained before closing


# While busy, a connection watches its socket edge-triggered (so bytes it leaves
# unread do not wake the loop again and again) for input, a reset or the peer's FIN.
# Edge-triggered because libevent's epoll reports a reset as READ|WRITE, never as
# CLOSED.  Every event on a descriptor must agree on EV_ET: the write watch is
# edge-triggered too, and the level-triggered read watch is off while busy.
_PEER_EVENTS = ev.EV_READ | ev.EV_CLOSED | ev.EV_ET | ev.EV_PERSIST
_HUNG_UP = select.POLLRDHUP | select.POLLHUP | select.POLLERR


def _peer_hung_up(fd: int) -> bool:
    """The peer sent FIN or reset (even with unread bytes still queued before it)."""
    poller = select.poll()
    poller.register(fd, select.POLLRDHUP)
    return any(mask & _HUNG_UP for _, mask in poller.poll(0))


# The reader of a parked connection that has no input: always empty, never fed.
_NO_READER = http1.RequestReader(http1.Limits())


class ConnState(enum.Enum):
    """Where a connection is; every change goes through ``HTTPConnection._enter``,
    which allows only the moves of ``TRANSITIONS``."""

    READING = "reading"  # a request head or body is (or may start) arriving
    IDLE = "idle"  # keep-alive, between requests
    BUSY = "busy"  # a response is being produced or written; not reading
    LINGERING = "lingering"  # our side is shut; input drained until EOF or a short time
    UPGRADED = "upgraded"  # left HTTP (a WebSocket): bytes go to the ``Upgraded`` handler
    CLOSED = "closed"


# Every legal move, in one place (as h11 keeps its transition tables).  READING to
# itself re-arms the head deadline when a response ended with more input queued.
# A WebSocket handshake's 101 leaves HTTP from READING (answered at once) or BUSY (the
# view ran on a thread); an upgraded connection only ends (shut, or closed).
TRANSITIONS: dict[ConnState, frozenset[ConnState]] = {
    ConnState.READING: frozenset({ConnState.READING, ConnState.IDLE, ConnState.BUSY,
                                  ConnState.LINGERING, ConnState.UPGRADED, ConnState.CLOSED}),
    ConnState.IDLE: frozenset({ConnState.READING, ConnState.BUSY, ConnState.LINGERING,
                               ConnState.CLOSED}),
    ConnState.BUSY: frozenset({ConnState.READING, ConnState.IDLE, ConnState.LINGERING,
                               ConnState.UPGRADED, ConnState.CLOSED}),
    ConnState.UPGRADED: frozenset({ConnState.LINGERING, ConnState.CLOSED}),
    ConnState.LINGERING: frozenset({ConnState.CLOSED}),
    ConnState.CLOSED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A connection was asked to move between two states ``TRANSITIONS`` does not
    link: a bug in the server, never the client's doing."""


class Exchange(Protocol):
    """What serves one request on a connection (``comet_server.serving.exchange.Exchange``)."""

    def client_gone(self) -> None: ...


class Upgraded(Protocol):
    """What takes a connection's bytes once it left HTTP (``switch_protocol``)."""

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self) -> None: ...


class Delivered(Protocol):
    """Told whether a response reached the client's kernel (the access log's word).
    Without ``log_enabled`` it is told only of a loss (the metrics count those; a call
    per delivered response would cost every request)."""

    log_enabled: bool

    def delivered(self, delivered: bool) -> None: ...


class ConnectionOwner(Protocol):
    """What a connection needs of its server."""

    loop: EventLoop
    limits: http1.Limits
    head_timeout: float
    keepalive_timeout: float
    min_body_rate: int
    stopping: bool
    body_bytes: int  # bytes held by unfinished request bodies, all connections
    max_body_bytes_total: int

    def serve(self, conn: HTTPConnection, request: http1.Request) -> None: ...

    def forget(self, conn: HTTPConnection) -> None: ...

    def refused(self, conn: HTTPConnection, error: http1.ProtocolError) -> None: ...


class HTTPConnection:
    """One accepted socket, served request after request."""

    __slots__ = (
        "owner", "sock", "fd", "peer", "reader", "state", "read_watch", "closed_watch",
        "write_watch", "out", "after_flush", "unparsed", "deadline", "timer", "exchange",
        "body_mark", "serving", "key", "on_flushed", "body_held", "queued", "upgraded",
    )

    def __init__(self, owner: ConnectionOwner, sock: socket.socket, peer: tuple[str, str],
                 key: str) -> None:
        self.owner = owner
        self.sock = sock
        self.fd = sock.fileno()  # -1 once closed
        self.peer = peer
        self.key = key  # whom the per-client connection cap counts this against
        self.reader = http1.RequestReader(owner.limits)
        self.state = ConnState.READING
        loop = owner.loop
        fd = sock.fileno()
        self.read_watch: IoWatch = loop.watch_io(fd, ev.EV_READ | ev.EV_PERSIST,
                                                 self.on_readable)
        self.closed_watch: IoWatch | None = None
        self.write_watch: IoWatch | None = None
        self.out: list[bytes] = []
        self.queued = 0  # bytes in ``out``: what the client has not taken yet
        # Once ``out`` is written: None nothing, else end the response, keeping the
        # connection alive (True) or not (False).
        self.after_flush: bool | None = None
        self.unparsed = b""
        self.deadline = 0.0
        self.timer: Timer | None = None
        self.exchange: Exchange | None = None
        self.body_mark = (0.0, 0)
        self.serving = False
        self.on_flushed: Delivered | None = None  # told whether the reply got out
        self.body_held = 0  # bytes of an unfinished body, counted in the owner's total
        self.upgraded: Upgraded | None = None  # the handler once the connection left HTTP
        self.read_watch.start()
        self._arm(owner.head_timeout)

    # -- state ----------------------------------------------------------------------

    def _enter(self, state: ConnState) -> None:
        """Change state: the events watched and the deadline follow from it (for
        ``CLOSED``, ``close`` releases everything)."""
        old = self.state
        if state not in TRANSITIONS[old]:
            raise IllegalTransition(f"connection {old.name} -> {state.name}")
        self.state = state
        if state is ConnState.CLOSED:
            return
        owner = self.owner
        if state is ConnState.BUSY:
            self.read_watch.stop()
            watch = self.closed_watch
            if watch is None:
                watch = self.closed_watch = owner.loop.watch_io(
                    self.sock.fileno(), _PEER_EVENTS, self.on_peer_activity)
            watch.start()
            self.deadline = 0.0 if not self.out else self.deadline
            return
        if old is ConnState.BUSY and self.closed_watch is not None:
            self.closed_watch.stop()
        if state is ConnState.IDLE:
            self.read_watch.start()
            self._arm(owner.keepalive_timeout)
        elif state is ConnState.READING:
            self.read_watch.start()
            self._arm(owner.head_timeout)
        elif state is ConnState.LINGERING:
            self.read_watch.start()
            self._arm(LINGER_SECONDS)
        elif state is ConnState.UPGRADED:
            # The handler keeps its own time (pings, idle); a reply it does not
            # read for keepalive_timeout is cut, as in HTTP.
            self.read_watch.start()
            if not self.out:
                self.deadline = 0.0
                if self.timer is not None:
                    self.timer.cancel()
                    self.timer = None

    def _arm(self, seconds: float) -> None:
        """Set the deadline ``seconds`` from now (one lazily re-armed timer)."""
        deadline = self.deadline = time.monotonic() + seconds
        timer = self.timer
        if timer is not None:
            if timer.deadline <= deadline + 0.05:
                return  # it fires in time; _on_deadline then waits for the rest
            timer.cancel()
        self.timer = self.owner.loop.call_later(math.ceil(seconds), self._on_deadline)

    def _on_deadline(self) -> None:
        self.timer = None
        if self.state is ConnState.CLOSED or not self.deadline:
            return
        left = self.deadline - time.monotonic()
        if left > 0.06:  # moved on since the timer was set: wait for the rest
            self.timer = self.owner.loop.call_later(math.ceil(left), self._on_deadline)
            return
        state = self.state
        if state is ConnState.READING and self.reader.in_body:
            since, received = self.body_mark
            now = time.monotonic()
            if self.reader.body_size - received >= self.owner.min_body_rate * (now - since):
                self.body_mark = (now, self.reader.body_size)
                self._arm(self.owner.head_timeout)
                return
            self.refuse(http1.ProtocolError(408, "Request Timeout"))
        elif state is ConnState.READING and (self.reader.in_head or not self.reader.url):
            if self.reader.in_head:
                self.refuse(http1.ProtocolError(408, "Request Timeout"))
            else:
                self.close()  # a new connection that never sent a byte
        elif state is ConnState.BUSY or state is ConnState.UPGRADED:
            if self.out:  # the client stopped reading its reply
                self.close(gone=True)
        else:  # idle keep-alive, or lingering over
            self.close()

    # -- reading --------------------------------------------------------------------

    def _socket_io(self, call: Callable[[int, A], R], arg: A, blocked: R | None) -> R | None:
        """``call(fd, arg)`` (a recv or a send): its result, ``blocked`` when the socket
        would block, ``None`` when the client is gone (the connection is closed)."""
        try:
            return call(self.fd, arg)
        except (BlockingIOError, InterruptedError):
            return blocked
        except OSError:
            self.close(gone=True)
            return None

    def on_readable(self) -> None:
        data = self._socket_io(ev.recv, RECV_SIZE, None)
        if data is None:
            return
        if not data:
            self.close(gone=self.state is not ConnState.LINGERING)
            return
        state = self.state
        if state is ConnState.UPGRADED:
            upgraded = self.upgraded
            assert upgraded is not None
            upgraded.data_received(data)
            return
        if state is ConnState.LINGERING:
            return  # discarded: we are closing
        self._consume(data)

    def _consume(self, data: bytes) -> None:
        reader = self.reader
        if reader is _NO_READER:
            reader = self.reader = http1.RequestReader(self.owner.limits)
        owner = self.owner
        was_in_body = reader.in_body
        rest = reader.feed(data)
        if rest:
            self.unparsed = rest
        if reader.in_body or self.body_held:
            # Unfinished bodies across all connections are capped (503 past it).
            held = reader.body_size if reader.in_body else 0
            owner.body_bytes += held - self.body_held
            self.body_held = held
            if held and owner.body_bytes > owner.max_body_bytes_total:
                self.refuse(http1.ProtocolError(503, "Service Unavailable"))
                return
        if reader.wants_continue and self.exchange is None:
            reader.continue_sent()
            self.write(http1.CONTINUE)
        if reader.in_body and not was_in_body:
            self.body_mark = (time.monotonic(), 0)
            self._arm(owner.head_timeout)
        if reader.queue:
            self._serve_queue()
        if self.state is ConnState.IDLE and (reader.in_head or reader.in_body):
            self._enter(ConnState.READING)  # part of a next request: the head deadline

    def _serve_queue(self) -> None:
        """Serve queued requests one at a time until one goes asynchronous."""
        if self.serving:
            return
        self.serving = True
        served = False
        try:
            reader = self.reader
            # One response at a time, and the next only once the last is written.
            while self.exchange is None and not self.out \
                    and self.state is not ConnState.CLOSED \
                    and self.state is not ConnState.LINGERING:
                if reader.queue:
                    item = reader.queue.popleft()
                    if isinstance(item, http1.ProtocolError):
                        self.refuse(item)
                        return
                    if self.owner.stopping:
                        item.keep_alive = False
                    served = True
                    self.owner.serve(self, item)
                elif self.unparsed and not reader.upgraded:
                    data, self.unparsed = self.unparsed, b""
                    self._consume(data)
                else:
                    break
            if self.exchange is None and not self.out and served:
                # The last response ended on this turn: wait for the next request.
                state = self.state
                if state is ConnState.IDLE:
                    self._arm(self.owner.keepalive_timeout)
                elif state is ConnState.BUSY or state is ConnState.READING:
                    self._enter(ConnState.READING if self.has_input() else ConnState.IDLE)
        finally:
            self.serving = False

    def has_input(self) -> bool:
        """Some of a next request has arrived (so closing now would cut it)."""
        reader = self.reader
        return bool(reader.in_head or reader.in_body or reader.queue or self.unparsed)

    # -- the response side, used by the exchange ------------------------------------

    def begin(self, exchange: Exchange) -> None:
        """A request is being served by ``exchange``."""
        self.exchange = exchange

    def suspend(self, *, keep_parser: bool = False) -> None:
        """The response waits (parked, streaming, or made on another thread): stop
        reading, watch for a close.

        A parser with nothing in it is dropped meanwhile (made again at the next read):
        thousands of parked requests then hold no llhttp state.  ``keep_parser`` for
        a wait expected to be short (a view running on a thread).
        """
        if self.state is not ConnState.BUSY and self.state is not ConnState.CLOSED:
            self._enter(ConnState.BUSY)
        if not keep_parser and self.reader is not _NO_READER and not self.has_input():
            self.reader = _NO_READER

    def write(self, data: bytes) -> None:
        """Send ``data`` now, buffering what the socket does not take."""
        if self.state is ConnState.CLOSED:
            return
        if self.out:
            self.out.append(data)
            self.queued += len(data)
            return
        sent = self._socket_io(ev.send, data, 0)
        if sent is None:
            return
        if sent < len(data):
            self.out.append(data[sent:])
            self.queued = len(data) - sent
            if self.state is not ConnState.BUSY and self.state is not ConnState.UPGRADED:
                self._enter(ConnState.BUSY)
            watch = self.write_watch
            if watch is None:
                watch = self.write_watch = self.owner.loop.watch_io(
                    self.sock.fileno(), ev.EV_WRITE | ev.EV_ET | ev.EV_PERSIST,
                    self.on_writable)
            watch.start()
            self._arm(self.owner.keepalive_timeout)

    def on_writable(self) -> None:
        out = self.out
        data = out[0] if len(out) == 1 else b"".join(out)
        sent = self._socket_io(ev.send, data, None)
        if sent is None:  # it would block, or the client is gone
            return
        out.clear()
        if sent < len(data):
            out.append(data[sent:])
            self.queued = len(data) - sent
            self._arm(self.owner.keepalive_timeout)  # progress: the client reads
            return
        self.queued = 0
        if self.write_watch is not None:
            self.write_watch.stop()
        keep_alive, self.after_flush = self.after_flush, None
        self._flushed(True)
        if keep_alive is not None:
            self._after_response(keep_alive)
        elif self.state is ConnState.BUSY or self.state is ConnState.UPGRADED:
            self.deadline = 0.0

    def end(self, keep_alive: bool, listener: Delivered | None) -> None:
        """The response is complete; go on with the next request or close.
        ``listener.delivered(ok)`` is told once its last byte is handed to the kernel
        (True) or the connection is lost first (False)."""
        self.exchange = None
        if self.state is ConnState.CLOSED:
            if listener is not None:
                listener.delivered(False)
            return
        if self.out:
            self.on_flushed = listener
            self.after_flush = keep_alive
            return
        if listener is not None and listener.log_enabled:
            listener.delivered(True)
        self._after_response(keep_alive)

    def _flushed(self, delivered: bool) -> None:
        listener, self.on_flushed = self.on_flushed, None
        if listener is not None and (listener.log_enabled or not delivered):
            listener.delivered(delivered)

    def _after_response(self, keep_alive: bool) -> None:
        if not keep_alive or self.owner.stopping:
            self.shut()
            return
        if self.state is ConnState.BUSY and not self.serving:
            self._enter(ConnState.READING if self.has_input() else ConnState.IDLE)
            self._serve_queue()

    # -- leaving HTTP ---------------------------------------------------------------

    def switch_protocol(self, handler: Upgraded) -> None:
        """The response just written (a 101) ends HTTP on this connection: from now on
        every byte read goes to ``handler`` and the exchange is over."""
        self.exchange = None
        self.reader = _NO_READER
        self.unparsed = b""
        self.upgraded = handler
        if self.state is not ConnState.CLOSED:
            self._enter(ConnState.UPGRADED)

    def pause_reading(self) -> None:
        """Stop reading an upgraded connection (its handler has enough queued); a
        close by the peer is still noticed."""
        if self.state is ConnState.UPGRADED:
            self.read_watch.stop()
            watch = self.closed_watch
            if watch is None:
                watch = self.closed_watch = self.owner.loop.watch_io(
                    self.sock.fileno(), _PEER_EVENTS, self.on_peer_activity)
            watch.start()

    def resume_reading(self) -> None:
        if self.state is ConnState.UPGRADED:
            if self.closed_watch is not None:
                self.closed_watch.stop()
            self.read_watch.start()

    # -- closing --------------------------------------------------------------------

    def refuse(self, error: http1.ProtocolError) -> None:
        """Answer an unservable request and close: nothing after it is read."""
        self.reader.queue.clear()
        self.unparsed = b""
        self.owner.refused(self, error)
        self.write(http1.error_response((1, 1), error.status, error.reason, error.detail,
                                        error.headers))
        if self.out:
            self.after_flush = False
            return
        self.shut()

    def shut(self) -> None:
        """Close gracefully: send FIN, drain what the client still sends, then close
        (closing with unread input would reset the connection and could destroy the
        reply in flight)."""
        if self.state is ConnState.CLOSED or self.state is ConnState.LINGERING:
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self._enter(ConnState.LINGERING)

    def on_peer_activity(self) -> None:
        """Something happened on the socket while we do not read (busy): a reset, a
        close, or pipelined bytes (left in the kernel for later)."""
        try:
            data = self.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(gone=True)
            return
        if not data or _peer_hung_up(self.sock.fileno()):
            self.close(gone=True)

    def close(self, *, gone: bool = False) -> None:
        if self.state is ConnState.CLOSED:
            return
        self._enter(ConnState.CLOSED)
        self.deadline = 0.0
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for watch in (self.read_watch, self.closed_watch, self.write_watch):
            if watch is not None:
                watch.close()
        self.out.clear()
        self.queued = 0
        self.owner.body_bytes -= self.body_held
        self.body_held = 0
        exchange, self.exchange = self.exchange, None
        self.fd = -1  # the number may be reused by the next accept
        upgraded, self.upgraded = self.upgraded, None
        try:
            self.sock.close()
        finally:
            self.owner.forget(self)
            self._flushed(False)
            if exchange is not None:
                exchange.client_gone()
            if upgraded is not None:
                upgraded.connection_lost()

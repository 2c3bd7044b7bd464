"""A WebSocket once its handshake is accepted: the hub's events out, messages in.

Outgoing: the socket follows its channels like an event stream (a hub follower);
each batch's frames are made once (``memo``) and the same bytes are written to every
socket of the batch.  A client that lets more than ``--max-stream-buffer`` pile up
unread is cut (it reconnects and resumes from its last id), so it cannot grow us.

Incoming: each complete message goes to the application's ``on_message`` on the
thread pool, one at a time per socket, in order; past ``INBOX_LIMIT`` messages
waiting the socket stops reading (TCP pushes back on the client).  An exception
closes with 1011 and is logged.

Time: a ping after ``--websocket-ping-interval`` without hearing from the client,
the connection dropped after ``--websocket-idle-timeout``; a close we start waits
``CLOSE_TIMEOUT`` for the client's reply.  A drain closes every socket with 1001
(the client reconnects elsewhere).  Knows nothing of Django.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Protocol

from comet_server.protocol import websocket as ws
from comet_server.push.waits import STREAM_LIFETIME_JITTER, Delivery, SocketPlan

if TYPE_CHECKING:
    from comet_server.loop import EventLoop, Timer
    from comet_server.protocol.connection import HTTPConnection
    from comet_server.protocol.responder import Responder
    from comet_server.push.hub import Event, Follower, Hub
    from comet_server.serving.config import ServerConfig
    from comet_server.serving.pool import WorkerPool

log = logging.getLogger("comet_server.serving.websocket")

INBOX_LIMIT = 16  # messages waiting for on_message before the socket stops reading
CLOSE_TIMEOUT = 5.0  # seconds a close we sent waits for the client's


class SocketOwner(Protocol):
    """What a socket needs of its server (``SocketOwner``)."""

    loop: EventLoop
    hub: Hub
    pool: WorkerPool
    config: ServerConfig
    max_stream_buffer: int
    slow_streams: int
    websockets: int

    def run_job(self, job: Callable[[], object], done: Callable[[BaseException | None], None],
                *, label: str = "") -> None: ...


class SocketPhase(enum.Enum):
    """Where a socket is; changed only by ``WebSocketSession._enter``."""

    OPEN = "open"  # messages both ways
    CLOSING = "closing"  # a close went out (or is due): waiting for the end
    CLOSED = "closed"  # the connection is gone


def _frames(frame: Callable[[Event], bytes], events: list[Event]) -> bytes:
    """The frames of a batch: one text message per event ``frame`` does not skip; an
    event it fails on is left out (logged)."""
    parts = []
    for event in events:
        try:
            payload = frame(event)
        except Exception:
            log.exception("error framing an event for the WebSockets: it is left out")
            continue
        if payload:
            parts.append(ws.text_frame(payload))
    return b"".join(parts)


class SocketBatch:
    """The frames of one batch of events for every socket it reaches, made once on a
    pool thread; sockets queue batches (``WebSocketSession.batches``) and write each
    once made, in order."""

    __slots__ = ("events", "data", "ready", "sessions")

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.data = b""
        self.ready = False
        self.sessions: list[WebSocketSession] = []

    def made(self, data: bytes) -> None:
        """On the loop: write the frames to the sockets waiting for them."""
        self.data = data
        self.ready = True
        sessions, self.sessions = self.sessions, []
        for session in sessions:
            session.flush_batches()


def make_batch(server: SocketOwner, frame: Callable[[Event], bytes],
               events: list[Event]) -> SocketBatch:
    batch = SocketBatch(events)
    server.pool.submit(partial(_frames, frame, events),
                       lambda outcome: batch.made(outcome.value or b""), admit=False,
                       label="framing events for WebSockets")
    return batch


class Handle:
    """What ``on_message`` gets: replies and closes carried to the loop thread."""

    __slots__ = ("session",)

    def __init__(self, session: WebSocketSession) -> None:
        self.session = session

    def send(self, message: str | bytes) -> None:
        if not isinstance(message, (str, bytes)):
            raise TypeError(f"a WebSocket message is str or bytes, not "
                            f"{type(message).__name__}")
        self.session.server.loop.call_soon(partial(self.session.send_message, message))

    def close(self, code: int = ws.NORMAL, reason: str = "") -> None:
        self.session.server.loop.call_soon(partial(self.session.close, code, reason))


class WebSocketSession:
    """One upgraded connection (``connection.Upgraded``)."""

    __slots__ = (
        "server", "conn", "framer", "plan", "response", "phase", "follower", "inbox",
        "busy", "heard", "timer", "close_timer", "handle", "closed_told", "paused",
        "messages_in", "life_timer", "batches",
    )

    def __init__(self, server: SocketOwner, conn: HTTPConnection, framer: ws.WebSocketFramer,
                 plan: SocketPlan, response: Responder) -> None:
        self.server = server
        self.conn = conn
        self.framer = framer
        self.plan = plan
        self.response = response  # for the access log line at the end
        response.headers = None  # the view's own headers were never sent: not kept
        self.phase = SocketPhase.OPEN
        self.follower: Follower | None = None
        self.inbox: deque[str | bytes] = deque()
        self.busy = False  # a message is with on_message
        self.heard = time.monotonic()
        self.timer: Timer | None = None
        self.close_timer: Timer | None = None
        self.handle = Handle(self)
        self.closed_told = False
        self.paused = False
        self.messages_in = 0
        self.life_timer: Timer | None = None
        self.batches: deque[SocketBatch] = deque()  # made on the pool, written in order

    # -- opening ----------------------------------------------------------------------

    def start(self) -> None:
        """Send the opening messages and what the hub's history holds past the
        cursor, then follow the channels (in the same loop turn: nothing between)."""
        plan = self.plan
        server = self.server
        server.websockets += 1
        out = [ws.text_frame(text) for text in plan.opening if text]
        if out:
            self._write(b"".join(out))
        if plan.opening:  # sent: not kept for the socket's life
            self.plan = plan = dataclasses.replace(plan, opening=())
        if plan.close is not None:  # a refusal told in-band: the opening, then the close
            self.close(*plan.close)
            return
        if plan.channels:
            assert plan.frame is not None
            after = plan.after
            ready = server.hub.events_after(plan.channels, after)
            if ready:
                self._queue(make_batch(server, plan.frame, ready))
                after = max(e.cursor for e in ready if e.cursor is not None)
            self.follower = server.hub.follow(plan.channels, after, self.on_events)
        self.timer = server.loop.call_later(server.config.websocket_ping_interval,
                                            self.on_tick)
        if plan.lifetime is not None:
            self.life_timer = server.loop.call_later(
                plan.lifetime * (1 - STREAM_LIFETIME_JITTER * random.random()),
                self.on_lifetime)

    # -- the hub's events ---------------------------------------------------------------

    def on_events(self, delivery: Delivery | None) -> None:
        """A batch for this socket: its frames (shared with every socket of the
        batch), or a close 1012 when the hub may have lost events (the client
        resumes from the application's store)."""
        if delivery is None:
            self.follower = None
            self.close(1012, "resume")
            return
        frame = self.plan.frame
        assert frame is not None
        memo = delivery.memo
        key = ("websocket", frame)
        batch = memo.get(key)
        if batch is None or batch.events is not delivery.events:
            batch = memo[key] = make_batch(self.server, frame, delivery.events)
        self._queue(batch)

    def _queue(self, batch: SocketBatch) -> None:
        if batch.ready and not self.batches:
            if batch.data and self.framer.open:
                self._write(batch.data)
            return
        self.batches.append(batch)
        if batch.ready:
            self.flush_batches()
        else:
            batch.sessions.append(self)

    def flush_batches(self) -> None:
        """Write the batches at the head of the queue whose frames are made."""
        batches = self.batches
        while batches and batches[0].ready and self.phase is SocketPhase.OPEN:
            data = batches.popleft().data
            if data and self.framer.open:
                self._write(data)

    def _write(self, data: bytes) -> None:
        conn = self.conn
        conn.write(data)
        if conn.queued > self.server.max_stream_buffer:
            self.server.slow_streams += 1
            self._lost(f"too slow: {conn.queued} bytes unread")

    def send_message(self, message: str | bytes) -> None:
        """A reply to this socket (on the loop thread)."""
        if self.phase is SocketPhase.OPEN:
            self.framer.send(message)
            self._flush()

    # -- the client's bytes (connection.Upgraded) ----------------------------------------

    def data_received(self, data: bytes) -> None:
        self.heard = time.monotonic()
        messages = self.framer.feed(data)
        if messages and self.plan.on_message is not None and self.phase is SocketPhase.OPEN:
            self.messages_in += len(messages)
            self.inbox.extend(messages)
            if len(self.inbox) >= INBOX_LIMIT and not self.paused:
                self.paused = True
                self.conn.pause_reading()
            self._next_message()
        self._flush()

    def _next_message(self) -> None:
        if self.busy or not self.inbox or self.phase is not SocketPhase.OPEN:
            return
        on_message = self.plan.on_message
        assert on_message is not None
        message = self.inbox.popleft()
        if self.paused and len(self.inbox) < INBOX_LIMIT // 2:
            self.paused = False
            self.conn.resume_reading()
        self.busy = True
        self.server.run_job(partial(on_message, self.handle, message), self._handled,
                            label=f"websocket {self.response.target.decode('latin-1')}")

    def _handled(self, error: BaseException | None) -> None:
        """``on_message`` returned (on the loop thread): the next, or close 1011."""
        self.busy = False
        if error is not None:
            log.error("error in a WebSocket's on_message: %s",
                      self.response.target.decode("latin-1"),
                      exc_info=(type(error), error, error.__traceback__))
            self.close(ws.INTERNAL_ERROR, "internal error")
            return
        self._next_message()

    def _flush(self) -> None:
        """Write what the framer has for the client; end the connection when the
        closing handshake is over."""
        framer = self.framer
        data = framer.take_output()
        if data:
            self._write(data)
        if not framer.open and self.phase is SocketPhase.OPEN:
            self._enter(SocketPhase.CLOSING)
        if framer.done and self.phase is not SocketPhase.CLOSED:
            conn = self.conn
            if conn.out:
                conn.after_flush = False  # shut once the close frame is out
            else:
                conn.shut()

    # -- time -------------------------------------------------------------------------

    def on_tick(self) -> None:
        """Ping a quiet client; drop one silent past the idle timeout."""
        self.timer = None
        if self.phase is not SocketPhase.OPEN:
            return
        config = self.server.config
        silent = time.monotonic() - self.heard
        if silent >= config.websocket_idle_timeout:
            self._lost(f"idle {silent:.0f}s")
            return
        if silent >= config.websocket_ping_interval - 0.05:
            self.framer.ping()
            self._flush()
            delay = min(config.websocket_ping_interval,
                        config.websocket_idle_timeout - silent)
        else:
            delay = config.websocket_ping_interval - silent
        self.timer = self.server.loop.call_later(max(0.1, delay), self.on_tick)

    # -- closing -------------------------------------------------------------------------

    def close(self, code: int = ws.NORMAL, reason: str = "") -> None:
        """Start the closing handshake (the client's reply ends the connection)."""
        if self.phase is SocketPhase.OPEN:
            self.framer.close(code, reason)
            self._flush()

    def on_lifetime(self) -> None:
        self.life_timer = None
        self.close(ws.NORMAL, "lifetime")

    def going_away(self) -> None:
        """The server drains: close 1001, the client reconnects elsewhere."""
        self.close(ws.GOING_AWAY, "server restarting")

    def _enter(self, phase: SocketPhase) -> None:
        """Change phase: a closing socket stops following and waits a bounded time."""
        self.phase = phase
        if self.follower is not None:
            self.server.hub.unfollow(self.follower)
            self.follower = None
        for timer in (self.timer, self.life_timer):
            if timer is not None:
                timer.cancel()
        self.timer = self.life_timer = None
        self.batches.clear()
        if phase is SocketPhase.CLOSING:
            self.inbox.clear()
            self.close_timer = self.server.loop.call_later(CLOSE_TIMEOUT, self._close_timeout)
        elif phase is SocketPhase.CLOSED:
            if self.close_timer is not None:
                self.close_timer.cancel()
                self.close_timer = None
            self.server.websockets -= 1
            self._told(self.framer.close_code)

    def _close_timeout(self) -> None:
        self.close_timer = None
        self.conn.close()

    def _lost(self, why: str) -> None:
        """Cut the connection without a closing handshake."""
        log.info("WebSocket %s cut: %s", self.response.target.decode("latin-1"), why)
        self.conn.close(gone=True)

    def connection_lost(self) -> None:
        if self.phase is SocketPhase.CLOSED:
            return
        self._enter(SocketPhase.CLOSED)

    def _told(self, code: int | None) -> None:
        """Tell the application once (on the pool), and write the access line."""
        if self.closed_told:
            return
        self.closed_told = True
        response = self.response
        response.code = 101
        response.log_line(f"websocket closed {code if code is not None else 'abnormally'}, "
                          f"{self.messages_in} messages in", code is not None)
        on_close = self.plan.on_close
        if on_close is not None:
            self.server.run_job(partial(on_close, code), _log_close_error,
                                label="websocket on_close")


def _log_close_error(error: BaseException | None) -> None:
    if error is not None:
        log.error("error in a WebSocket's on_close",
                  exc_info=(type(error), error, error.__traceback__))


def upgrade_to_websocket(server: SocketOwner, conn: HTTPConnection, handshake: ws.Handshake,
                         plan: SocketPlan, response: Responder) -> WebSocketSession:
    """Write the 101 and hand the connection to a new session."""
    session = WebSocketSession(server, conn, handshake.framer, plan, response)
    conn.write(handshake.response)
    conn.switch_protocol(session)
    session.start()
    return session

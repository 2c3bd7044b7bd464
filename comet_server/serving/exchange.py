"""One request: the WSGI call, and the driving of its response without a thread.

A plain WSGI iterable is sent at once.  A *comet response* (an iterable with
``comet_coroutine()``, see ``comet_server.push.waits``) is run by the shared
``CoroutineDriver`` up to each wait; the exchange then parks (a loop timer, a hub
watch) and resumes the coroutine when the wait resolves.  A ``FollowEvents`` wait
makes it an event stream: a hub follower writes each batch's frames (made once per
batch for every stream) straight to the connection, a timer pings it when idle, and
the coroutine resumes only when the stream ends (lifetime, drain, events lost).  HTTP framing is the
``Responder``'s; this module never touches a socket and knows nothing of Django.
"""

from __future__ import annotations

import enum
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from comet_server.protocol import http1
from comet_server.protocol.responder import Responder
from comet_server.protocol.websocket import Handshake
from comet_server.push.waits import (
    CoroutineDriver,
    Delivery,
    FollowEvents,
    Sleep,
    SocketPlan,
    StreamEnd,
    WaitForEvents,
    frame_all,
)
from comet_server.serving import websocket

if TYPE_CHECKING:
    from comet_server.loop import Timer
    from comet_server.protocol.connection import HTTPConnection
    from comet_server.push.hub import Follower, Watch
    from comet_server.serving.server import CometServer

log = logging.getLogger("comet_server.serving.server")

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]

# What an application may raise without stopping the server: sys.exit() in a view
# is a bug of that view, not a request to stop serving everyone.
APPLICATION_ERRORS = (Exception, SystemExit)
_CHUNK_TYPES = (bytes, bytearray, memoryview)


class Phase(enum.Enum):
    """Where an exchange is; changed only by the exchange itself."""

    RUNNING = "running"  # the application or its coroutine is executing
    PARKED = "parked"  # waiting for a timer or events, no thread held
    FOLLOWING = "following"  # an event stream: events are written as they come
    DONE = "done"  # answered (or abandoned); nothing more happens


def _frame_batch(frame: Callable[[Any], bytes],
                 events: list[Any]) -> tuple[list[Any], bytes, bytes]:
    """``(events, their frames, the frames as one chunk)``, made once per batch."""
    data = frame_all(frame, events)
    return events, data, http1.chunk(data) if data else data


class Exchange:
    """One request on one connection, from the WSGI call to the last byte."""

    __slots__ = (
        "server", "conn", "response", "result", "driver", "pending", "phase",
        "parked_since", "timer", "watch", "stop_answered", "counted", "following",
        "follower", "beat", "last_write",
    )

    def __init__(self, server: CometServer, conn: HTTPConnection, request: http1.Request,
                 client: str) -> None:
        self.server = server
        self.conn = conn
        self.response = Responder(conn, request, client, log_enabled=server.access_log,
                                  observer=server.metrics)
        self.result: Any = None
        self.driver: CoroutineDriver | None = None
        self.pending: list[bytes] = []
        self.phase = Phase.RUNNING
        self.parked_since = 0.0
        self.timer: Timer | None = None
        self.watch: Watch | None = None
        self.stop_answered = False
        self.counted = False  # counted against the per-client cap (behind a proxy)
        self.following: FollowEvents | None = None  # the stream's wait, while following
        self.follower: Follower | None = None
        self.beat: Timer | None = None  # the heartbeat of a stream
        self.last_write = 0.0  # when a stream last wrote (its heartbeat counts from it)

    @property
    def client(self) -> str:
        """The peer, or the client a trusted proxy names."""
        return self.response.client

    # -- WSGI call ------------------------------------------------------------------

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.response.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.response.headers is not None:
            raise AssertionError("start_response called twice without exc_info")
        self.response.set_status(status, headers)
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
            handshake = environ.get("comet.websocket")
            plan = None if handshake is None else getattr(result, "comet_websocket", None)
            if plan is not None and handshake is not None:
                self.upgrade(handshake, plan)
                return
            factory = None if type(result) is list else getattr(result, "comet_coroutine", None)
            if factory is not None:
                self.driver = CoroutineDriver(factory())
                self.step(None)
                return
            for chunk in result:
                if type(chunk) is not bytes:
                    if not isinstance(chunk, _CHUNK_TYPES):
                        raise TypeError("WSGI body chunks must be bytes, "
                                        f"not {type(chunk).__name__}")
                    chunk = bytes(chunk)
                if chunk:
                    self.pending.append(chunk)
            self.finish()
        except APPLICATION_ERRORS:
            self.fail("application error")

    def upgrade(self, handshake: Handshake, plan: SocketPlan) -> None:
        """The application accepted a WebSocket: this exchange ends (its response
        closed, so Django finishes the request) and the connection leaves HTTP."""
        self.phase = Phase.DONE
        self._release()
        websocket.upgrade(self.server, self.conn, handshake, plan, self.response)

    # -- driving a comet coroutine ---------------------------------------------------

    def step(self, outcome: Any) -> None:
        """Advance the coroutine until it waits or ends."""
        server = self.server
        assert self.driver is not None
        while True:
            wait = self.driver.advance(outcome, self.pending)
            if self.driver.status is not None:
                self._restatus()
            if wait is None:
                self.finish()
                return
            if server.stopping:
                # Draining: a long-poll gets one empty answer (clients re-poll); any
                # further wait, or a wait in a stream, ends the response.
                if isinstance(wait, WaitForEvents) and not self.response.started \
                        and not self.stop_answered:
                    self.stop_answered = True
                    outcome = server.empty_delivery()
                    continue
                self.finish()
                return
            if isinstance(wait, WaitForEvents):
                ready = server.hub.events_after(wait.channels, wait.after)
                if ready:
                    outcome = Delivery(ready)
                    continue
            elif isinstance(wait, FollowEvents):
                if self.response.method == "HEAD":  # the head a GET gets, no body
                    self.pending.clear()
                    self._send_pending()
                    self.finish()
                    return
                self.follow(wait)
                return
            self.park(wait)
            return

    def park(self, wait: Sleep | WaitForEvents) -> None:
        """Send what is buffered, then wait without a thread (the hub and the loop
        never call back from inside the registration)."""
        server = self.server
        if self.pending:
            self._send_pending()
        self.conn.suspend()
        self.parked_since = time.monotonic()
        server.parked += 1
        if isinstance(wait, Sleep):
            self.timer = server.loop.call_later(wait.seconds, self.on_timer)
        else:
            self.watch = server.hub.watch(wait.channels, wait.after, self.on_delivery)
            self.timer = server.loop.call_later(wait.timeout, self.on_timeout)
        self.phase = Phase.PARKED

    def _restatus(self) -> None:
        """The coroutine chose another status (a refusal found while waiting)."""
        assert self.driver is not None
        status, self.driver.status = self.driver.status, None
        assert status is not None
        if self.response.started:
            raise RuntimeError("a comet coroutine set a status after the response started")
        self.response.set_status(status.line, self.response.headers or [])

    def follow(self, wait: FollowEvents) -> None:
        """Become an event stream: send what is buffered (the head at least) and the
        events the hub's history holds past the cursor, then follow the channels."""
        server = self.server
        after = wait.after
        ready = server.hub.events_after(wait.channels, after)
        if ready:
            self.pending.append(frame_all(wait.frame, ready))
            after = max(e.cursor for e in ready if e.cursor is not None)
        self._closing()
        started = self.response.started
        data = b"".join(self.pending)
        self.pending.clear()
        self.response.send(data)  # starts the stream even without data
        if not started:
            server.streaming += 1
        self.conn.suspend()
        self.parked_since = time.monotonic()
        server.following += 1
        self.following = wait
        self.follower = server.hub.follow(wait.channels, after, self.on_stream)
        self.timer = server.loop.call_later(server.stream_duration(wait), self.on_stream_end)
        self.last_write = time.monotonic()
        self.beat = server.loop.call_later(wait.heartbeat or server.config.stream_heartbeat,
                                           self.on_beat)
        self.phase = Phase.FOLLOWING
        if self.conn.queued > server.max_stream_buffer:  # a catch-up it does not take
            self._cut_slow()

    def on_stream(self, delivery: Delivery | None) -> None:
        """A batch of events for this stream: write its frames (shared by every stream
        of the batch), or end the stream when the hub may have lost events."""
        wait = self.following
        if wait is None:
            return
        if delivery is None:
            self.follower = None  # the hub dropped it
            self.resume(StreamEnd.LOST)
            return
        events = delivery.events
        frame = wait.frame
        memo = delivery.memo
        # One entry per frame function, for the batch being fanned out: the frames
        # of its events, plain and as a chunk (made once for every stream).
        entry = memo.get(frame)
        if entry is None or entry[0] is not events:
            entry = memo[frame] = _frame_batch(frame, events)
        data = entry[2] if self.response.chunked else entry[1]
        if data:
            self.send_stream(data)

    def send_stream(self, data: bytes) -> None:
        """Write framed stream bytes; a client that lets more than the bound pile up
        unread is cut (it resumes from its last event id), so it cannot grow us."""
        conn = self.conn
        conn.write(data)
        self.response.sent += len(data)
        self.last_write = time.monotonic()
        if conn.queued > self.server.max_stream_buffer:
            self._cut_slow()

    def _cut_slow(self) -> None:
        self.server.slow_streams += 1
        if self._abandon():
            self.response.abort(f"too slow: {self.conn.queued} bytes unread")

    def on_beat(self) -> None:
        """Ping a stream that wrote nothing for a heartbeat; else look again when it
        will have been silent that long (to a tenth of a second: few distinct timer
        durations, so the loop's timer queues stay few)."""
        wait = self.following
        if wait is None:
            return
        heartbeat = wait.heartbeat or self.server.config.stream_heartbeat
        silent = time.monotonic() - self.last_write
        if silent >= heartbeat - 0.05:
            if wait.ping:
                self.send_stream(http1.chunk(wait.ping) if self.response.chunked
                                 else wait.ping)
            delay = heartbeat
        else:
            delay = max(0.1, math.ceil((heartbeat - silent) * 10) / 10)
        if self.following is not None:
            self.beat = self.server.loop.call_later(delay, self.on_beat)

    def on_stream_end(self) -> None:
        self.timer = None
        self.resume(StreamEnd.LIFETIME)

    def unpark(self) -> None:
        server = self.server
        if self.phase is Phase.FOLLOWING:
            server.following -= 1
            server.hub.unfollow(self.follower)
            self.follower = self.following = None
            if self.beat is not None:
                self.beat.cancel()
                self.beat = None
        else:
            server.parked -= 1
            self.response.parked_total += time.monotonic() - self.parked_since
        self.phase = Phase.RUNNING
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.watch is not None:
            server.hub.cancel(self.watch)
            self.watch = None

    def resume(self, outcome: Any) -> None:
        if self.phase is not Phase.PARKED and self.phase is not Phase.FOLLOWING:
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
        if self.phase is Phase.FOLLOWING:
            self.resume(StreamEnd.DRAIN)
            return
        if self.phase is not Phase.PARKED:
            return
        if self.watch is not None:
            self.stop_answered = self.response.started
            self.resume(self.server.empty_delivery())
        else:  # a timer: go on now; the next wait ends the response
            self.resume(None)

    # -- the response ---------------------------------------------------------------

    def _closing(self) -> None:
        if self.server.stopping:
            self.response.keep_alive = False

    def _send_pending(self) -> None:
        self._closing()
        started = self.response.started
        data = b"".join(self.pending)
        self.pending.clear()
        self.response.send(data)
        if not started:
            self.server.streaming += 1

    def finish(self) -> None:
        """Send the rest of the response and end it."""
        pending = self.pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self._closing()
        self.response.check_length(data)  # before anything is freed: a 500 is still possible
        streaming = self.response.started
        self.phase = Phase.DONE
        self._release()
        self.response.finish(data)
        if streaming:
            self.server.streaming -= 1

    def fail(self, why: str) -> None:
        """The application failed: 500 if nothing was sent yet, else cut the connection."""
        log.error("%s: %s %s", why, self.response.method,
                  self.response.target.decode("latin-1"),
                  exc_info=sys.exc_info()[0] is not None)
        if self._abandon():
            self._closing()
            self.response.fail()

    def client_gone(self) -> None:
        """The connection closed under a parked or streaming response."""
        if self._abandon():
            self.response.client_gone()

    def _abandon(self) -> bool:
        """End the exchange early (failure, client gone); False if it already ended."""
        if self.phase is Phase.DONE:
            return False
        if self.phase is Phase.PARKED or self.phase is Phase.FOLLOWING:
            self.unpark()
        if self.response.started:
            self.server.streaming -= 1
        self.phase = Phase.DONE
        self._release()
        return True

    def _release(self) -> None:
        """Free what the response held: the per-client slot, the coroutine, the result."""
        if self.counted:
            self.counted = False
            self.server.release_client(self)
        driver, self.driver = self.driver, None
        result, self.result = self.result, None
        try:
            if driver is not None:
                driver.close()
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

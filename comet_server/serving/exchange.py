"""One request: the WSGI call, and the driving of its response without holding a thread
while it waits.

Application code runs on the server's ``WorkerPool`` (``pool.py``): the WSGI call and
the iteration of a plain body (a slice of at most ``BODY_SLICE`` bytes per job, so a
large streamed body is never held whole), and every step of a *comet response* (an
iterable with ``comet_coroutine()``, see ``comet_server.push.waits``), which is where
renderers and ``defer_in_time``'s next view run.  A job produces values only (the
status, body chunks, the next wait, or an error); the loop applies them: sends, parks
on a timer or a hub watch, follows the hub.  The exchange's ``Phase`` says who may
touch it: while it is ``QUEUED`` or ``RUNNING_APP`` its body buffer, coroutine and
result belong to the pool thread, and the loop only marks it abandoned.

A ``FollowEvents`` wait makes it an event stream: a hub follower hands it each batch;
the batch's frames are made once on a pool thread for every stream (``FrameBatch``),
then written to each stream on the loop in batch order; a timer pings it when idle,
and the coroutine resumes only when the stream ends (lifetime, drain, events lost).
HTTP framing is the ``Responder``'s; this module never touches a socket and knows
nothing of Django.
"""

from __future__ import annotations

import enum
import logging
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from comet_server.protocol import http1
from comet_server.protocol.responder import Responder
from comet_server.protocol.websocket import Handshake
from comet_server.push.events import Delivery
from comet_server.push.waits import (
    CoroutineDriver,
    FollowEvents,
    Sleep,
    SocketPlan,
    StreamEnd,
    Wait,
    WaitForEvents,
    frame_all,
)
from comet_server.serving.pool import Outcome, WorkerPool, run_job

if TYPE_CHECKING:
    from comet_server.loop import EventLoop, Timer
    from comet_server.protocol.connection import HTTPConnection
    from comet_server.protocol.responder import ResponseObserver
    from comet_server.push.hub import Follower, Hub, Watch
    from comet_server.serving.config import ServerConfig

log = logging.getLogger("comet_server.serving.exchange")

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]

# What an application may raise without stopping the server: sys.exit() in a view
# is a bug of that view, not a request to stop serving everyone.
APPLICATION_ERRORS = (Exception, SystemExit)
_CHUNK_TYPES = (bytes, bytearray, memoryview)
BODY_SLICE = 64 << 10  # bytes of a plain body a pool job makes before the loop sends them
BODY_BACKLOG = 256 << 10  # unsent bytes at which the next slice waits for the client
RESUME_BATCH = 256  # woken exchanges stepped by one pool job


class ExchangeOwner(Protocol):
    """What an exchange needs of its server (``CometServer``): the loop, the hub, the
    pool, the settings, and the counters it keeps up to date."""

    loop: EventLoop
    hub: Hub
    pool: WorkerPool
    resumptions: Resumptions
    config: ServerConfig
    access_log: bool
    stopping: bool
    max_stream_buffer: int
    parked: int
    streaming: int
    following: int
    slow_streams: int

    @property
    def metrics(self) -> ResponseObserver | None: ...

    def empty_delivery(self) -> Delivery: ...

    def stream_duration(self, wait: FollowEvents) -> float: ...

    def release_client(self, exchange: Exchange) -> None: ...

    def upgrade(self, conn: HTTPConnection, handshake: Handshake, plan: SocketPlan,
                response: Responder) -> None: ...


class Phase(enum.Enum):
    """Where an exchange is; changed only through ``Exchange._enter`` (``_MOVES``)."""

    RUNNING = "running"  # on the loop: what the application made is being applied
    QUEUED = "queued"  # application work waits for a pool thread
    RUNNING_APP = "running app"  # application code runs on a pool thread
    PARKED = "parked"  # waiting for a timer or events, no thread held
    FOLLOWING = "following"  # an event stream: events are written as they come
    DONE = "done"  # answered (or abandoned); nothing more happens


_MOVES: dict[Phase, frozenset[Phase]] = {
    Phase.RUNNING: frozenset({Phase.QUEUED, Phase.PARKED, Phase.FOLLOWING, Phase.DONE}),
    Phase.QUEUED: frozenset({Phase.RUNNING_APP, Phase.RUNNING, Phase.DONE}),
    Phase.RUNNING_APP: frozenset({Phase.RUNNING, Phase.DONE}),
    Phase.PARKED: frozenset({Phase.RUNNING, Phase.QUEUED, Phase.DONE}),
    Phase.FOLLOWING: frozenset({Phase.RUNNING, Phase.QUEUED, Phase.DONE}),
    Phase.DONE: frozenset(),
}
# The loop abandons an exchange (client gone) while a pool thread may be claiming it:
# those two moves are made under this lock, so exactly one of them wins.
_PHASE_LOCK = threading.Lock()

# What a pool job hands back besides a wait.
_END = "end"  # the body is complete (and the result closed on the thread)
_MORE = "more"  # a slice of the body is ready; more to come
_SKIPPED = "skipped"  # the exchange was abandoned before the job started


class _Upgrade:
    """What a pool job hands back when the view accepted a WebSocket handshake."""

    __slots__ = ("handshake", "plan")

    def __init__(self, handshake: Handshake, plan: SocketPlan) -> None:
        self.handshake = handshake
        self.plan = plan


class FrameBatch:
    """The frames of one batch of events for every event stream it reaches, made once
    on a pool thread; streams wait for it in their own queue (``Exchange.frames``)
    so each writes its batches in order."""

    __slots__ = ("events", "plain", "chunked", "ready", "streams")

    def __init__(self, events: list[Any]) -> None:
        self.events = events
        self.plain = b""
        self.chunked = b""
        self.ready = False
        self.streams: list[Exchange] = []

    def made(self, outcome: Outcome) -> None:
        """On the loop: the frames are made; write them to the streams waiting."""
        data = outcome.value or b""
        self.plain = data
        self.chunked = http1.chunk(data) if data else data
        self.ready = True
        streams, self.streams = self.streams, []
        for exchange in streams:
            exchange.flush_frames()


class Resumptions:
    """Exchanges woken in one loop turn (a publish to thousands of long-polls), stepped
    on the pool ``RESUME_BATCH`` at a time: one hand-off per batch, not per waiter,
    and the outcomes come back to the loop together.  Inline pools step each now."""

    def __init__(self, loop: EventLoop, pool: WorkerPool) -> None:
        self.loop = loop
        self.pool = pool
        self.waiting: list[tuple[Exchange, Any]] = []

    def add(self, exchange: Exchange, outcome: Any) -> None:
        if self.pool.inline:
            exchange.submit_step(outcome)
            return
        if not self.waiting:
            self.loop.call_soon(self.flush)
        self.waiting.append((exchange, outcome))

    def flush(self) -> None:
        waiting, self.waiting = self.waiting, []
        for start in range(0, len(waiting), RESUME_BATCH):
            batch = waiting[start:start + RESUME_BATCH]
            self.pool.submit(partial(_step_all, batch), partial(_apply_all, batch),
                             admit=False, label=f"{len(batch)} woken responses")


def _step_all(batch: list[tuple[Exchange, Any]]) -> list[Outcome]:
    """On a pool thread: step each exchange of a batch."""
    return [run_job(partial(exchange.on_thread, exchange.advance, outcome))
            for exchange, outcome in batch]


def _apply_all(batch: list[tuple[Exchange, Any]], outcome: Outcome) -> None:
    """On the loop: apply each exchange's step."""
    outcomes = outcome.value
    if outcomes is None:  # _step_all itself failed (it does not): fail each
        outcomes = [outcome] * len(batch)
    for (exchange, _), result in zip(batch, outcomes, strict=True):
        try:
            exchange.applied(result)
        except Exception:
            log.exception("error applying a woken response's step")


class Exchange:
    """One request on one connection, from the WSGI call to the last byte."""

    __slots__ = (
        "server", "conn", "response", "result", "driver", "pending", "phase",
        "parked_since", "timer", "watch", "stop_answered", "counted", "following",
        "follower", "beat", "last_write", "body", "new_status", "status_given", "frames",
    )

    def __init__(self, server: ExchangeOwner, conn: HTTPConnection, request: http1.Request,
                 client: str) -> None:
        self.server = server
        self.conn = conn
        self.response = Responder(conn, request, client, log_enabled=server.access_log,
                                  observer=server.metrics)
        self.result: Any = None
        self.driver: CoroutineDriver | None = None
        self.body: Iterator[Any] | None = None  # a plain body being iterated in slices
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
        # start_response's status and headers, for the loop to apply.
        self.new_status: tuple[str, list[tuple[str, str]]] | None = None
        self.status_given = False
        self.frames: deque[FrameBatch] | None = None  # a stream's batches, in order

    @property
    def client(self) -> str:
        """The peer, or the client a trusted proxy names."""
        return self.response.client

    def __str__(self) -> str:
        """The request, as the slow-request log names it."""
        return f"{self.response.method} {self.response.target.decode('latin-1')}"

    def _enter(self, phase: Phase) -> bool:
        """Move to ``phase`` if ``_MOVES`` allows it from where the exchange is."""
        with _PHASE_LOCK:
            if phase not in _MOVES[self.phase]:
                return False
            self.phase = phase
            return True

    # -- WSGI call (on a pool thread) -------------------------------------------------

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.response.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status_given:
            raise AssertionError("start_response called twice without exc_info")
        self.status_given = True
        self.new_status = (status, headers)
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable: buffered like yielded data."""
        if not isinstance(data, _CHUNK_TYPES):
            raise TypeError("write() takes bytes")
        if data:
            self.pending.append(bytes(data))

    def run(self, app: WSGIApp, environ: dict) -> None:
        """Hand the application call to the pool (503 when its queue is full)."""
        pool = self.server.pool
        if not pool.inline:  # read no more meanwhile; notice a client going away
            self.conn.suspend(keep_parser=True)
        self._enter(Phase.QUEUED)
        if not pool.submit(partial(self.on_thread, self._call, (app, environ)),
                                       self.applied, label=self):
            self._enter(Phase.RUNNING)  # refused: answered here, on the loop
            self.start_response("503 Service Unavailable", [
                ("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "1")])
            self.pending.append(b"the server is busy: try again in a moment\n")
            self.finish()

    def on_thread(self, work: Callable[[Any], Any], arg: Any) -> Any:
        """A pool job: run ``work(arg)`` unless the exchange was abandoned first.  If
        the application fails, what it holds is closed here, on its thread."""
        if not self._enter(Phase.RUNNING_APP):
            return _SKIPPED
        try:
            return work(arg)
        except APPLICATION_ERRORS:
            self.close_app()
            raise

    def _call(self, call: tuple[WSGIApp, dict]) -> Any:
        app, environ = call
        result = self.result = app(environ, self.start_response)
        handshake = environ.get("comet.websocket")
        plan = None if handshake is None else getattr(result, "comet_websocket", None)
        if plan is not None and handshake is not None:  # the view accepted a WebSocket
            self.close_app()  # Django's request-finished work, here on the thread
            return _Upgrade(handshake, plan)
        factory = None if type(result) is list else getattr(result, "comet_coroutine", None)
        if factory is not None:
            self.driver = CoroutineDriver(factory())
            return self.advance(None)
        self.body = iter(result)
        return self._iterate(None)

    def _iterate(self, _: Any) -> str:
        """The next slice of a plain body; at its end the result is closed here."""
        body = self.body
        assert body is not None
        pending = self.pending
        size = 0
        for chunk in body:
            if type(chunk) is not bytes:
                if not isinstance(chunk, _CHUNK_TYPES):
                    raise TypeError("WSGI body chunks must be bytes, "
                                    f"not {type(chunk).__name__}")
                chunk = bytes(chunk)
            if chunk:
                pending.append(chunk)
                size += len(chunk)
                if size >= BODY_SLICE:
                    return _MORE
        self.close_app()
        return _END

    def advance(self, outcome: Any) -> Wait | str:
        """Step the comet coroutine to its next wait; at its end it is closed here."""
        driver = self.driver
        assert driver is not None
        wait = driver.advance(outcome, self.pending)
        if wait is None:
            self.close_app()
            return _END
        return wait

    def close_app(self) -> None:
        """Close what the application returned: Django's request-finished work (and a
        coroutine's ``finally``) run here, on a pool thread, never on the loop."""
        driver, self.driver = self.driver, None
        result, self.result = self.result, None
        self.body = None
        if driver is not None:
            try:
                driver.close()
            except Exception:
                log.exception("error closing the comet coroutine")
        if result is not None and type(result) is not list:
            try:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            except Exception:
                log.exception("error in the response iterable's close()")

    # -- applying what a job made (on the loop) --------------------------------------

    def applied(self, outcome: Outcome) -> None:
        """A pool job ended: send, park or follow as it says."""
        if outcome.value is _SKIPPED or not self._enter(Phase.RUNNING):
            self._close_later()  # abandoned meanwhile
            return
        try:
            if outcome.error is not None:
                self.fail("application error", outcome.exc_info())
                return
            self._apply_status()
            product = outcome.value
            if product is _END:
                self.finish()
            elif product is _MORE:
                self._send_pending()
                self._next_slice()
            elif isinstance(product, _Upgrade):
                self.upgrade(product)
            else:
                self.on_wait(product)
        except APPLICATION_ERRORS:
            self.fail("application error")

    def upgrade(self, accepted: _Upgrade) -> None:
        """The view accepted a WebSocket: this exchange ends and the connection
        leaves HTTP (the server's WebSocket session takes it)."""
        self._enter(Phase.DONE)
        self._release()
        self.server.upgrade(self.conn, accepted.handshake, accepted.plan, self.response)

    def _apply_status(self) -> None:
        if self.new_status is not None:
            status, headers = self.new_status
            self.new_status = None
            if self.response.started:
                raise RuntimeError("start_response called again after the response "
                                   "started")
            self.response.set_status(status, headers)
        driver = self.driver
        if driver is not None and driver.status is not None:
            # The coroutine chose another status (a refusal found while waiting).
            status_line, driver.status = driver.status, None
            if self.response.started:
                raise RuntimeError("a comet coroutine set a status after the response "
                                   "started")
            self.response.set_status(status_line.line, self.response.headers or [])

    def _next_slice(self) -> None:
        """Make the next slice of a plain body once the client took most of the last."""
        self.timer = None
        if self.phase is not Phase.RUNNING:
            return
        if self.conn.queued > BODY_BACKLOG:
            self.timer = self.server.loop.call_later(0.01, self._next_slice)
            return
        self._enter(Phase.QUEUED)
        self.server.pool.submit(partial(self.on_thread, self._iterate, None), self.applied,
                                admit=False, label=self)

    def advance_on_pool(self, outcome: Any) -> None:
        """Step the coroutine with ``outcome`` on a pool thread."""
        self._enter(Phase.QUEUED)
        self.submit_step(outcome)

    def submit_step(self, outcome: Any) -> None:
        """Hand the pool the next step of a QUEUED exchange."""
        self.server.pool.submit(partial(self.on_thread, self.advance, outcome), self.applied,
                                admit=False, label=self)

    def on_wait(self, wait: Wait) -> None:
        """The coroutine stopped at ``wait``: park, follow, or go on at once."""
        server = self.server
        if server.stopping:
            # Draining: a long-poll gets one empty answer (clients re-poll); any
            # further wait, or a wait in a stream, ends the response.
            if isinstance(wait, WaitForEvents) and not self.response.started \
                    and not self.stop_answered:
                self.stop_answered = True
                self.advance_on_pool(server.empty_delivery())
                return
            self.finish()
            return
        if isinstance(wait, WaitForEvents):
            ready = server.hub.events_after(wait.channels, wait.after)
            if ready:
                self.advance_on_pool(Delivery(ready))
                return
        elif isinstance(wait, FollowEvents):
            if self.response.method == "HEAD":  # the head a GET gets, no body
                self.pending.clear()
                self._send_pending()
                self.finish()
                return
            self.follow(wait)
            return
        self.park(wait)

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
        self._enter(Phase.PARKED)

    def follow(self, wait: FollowEvents) -> None:
        """Become an event stream: send what is buffered (the head at least), follow
        the channels, and send the events the hub's history holds past the cursor
        (framed on the pool, ahead of any batch that comes next)."""
        server = self.server
        after = wait.after
        ready = server.hub.events_after(wait.channels, after)
        if ready:
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
        self.frames = deque()
        self.follower = server.hub.follow(wait.channels, after, self.on_stream)
        self.timer = server.loop.call_later(server.stream_duration(wait), self.on_stream_end)
        self.last_write = time.monotonic()
        self.beat = server.loop.call_later(wait.heartbeat or server.config.stream_heartbeat,
                                           self.on_beat)
        self._enter(Phase.FOLLOWING)
        if ready:
            self._queue_frames(self._make_frames(wait.frame, ready))
        if self.conn.queued > server.max_stream_buffer:  # a catch-up it does not take
            self._cut_slow()

    def _make_frames(self, frame: Callable[[Any], bytes], events: list[Any]) -> FrameBatch:
        batch = FrameBatch(events)
        self.server.pool.submit(partial(frame_all, frame, events), batch.made, admit=False,
                                label="framing events")
        return batch

    def on_stream(self, delivery: Delivery | None) -> None:
        """A batch of events for this stream: queue its frames (made once for every
        stream of the batch), or end the stream when the hub may have lost events."""
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
        # One entry per frame function, for the batch being fanned out.
        batch = memo.get(frame)
        if batch is None or batch.events is not events:
            batch = memo[frame] = self._make_frames(frame, events)
        self._queue_frames(batch)

    def _queue_frames(self, batch: FrameBatch) -> None:
        frames = self.frames
        if frames is None:
            return
        if batch.ready and not frames:
            self._write_frames(batch)
            return
        frames.append(batch)
        if not batch.ready:
            batch.streams.append(self)
        else:
            self.flush_frames()

    def flush_frames(self) -> None:
        """Write the batches at the head of the queue whose frames are made."""
        frames = self.frames
        while frames and frames[0].ready and self.following is not None:
            self._write_frames(frames.popleft())
            frames = self.frames

    def _write_frames(self, batch: FrameBatch) -> None:
        data = batch.chunked if self.response.chunked else batch.plain
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
        """Leave PARKED or FOLLOWING: stop the timers, the watch, the follower."""
        server = self.server
        if self.phase is Phase.FOLLOWING:
            server.following -= 1
            server.hub.unfollow(self.follower)
            self.follower = self.following = None
            self.frames = None
            if self.beat is not None:
                self.beat.cancel()
                self.beat = None
        else:
            server.parked -= 1
            self.response.parked_total += time.monotonic() - self.parked_since
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.watch is not None:
            server.hub.cancel(self.watch)
            self.watch = None

    def resume(self, outcome: Any) -> None:
        """A wait resolved: step the coroutine on the pool (with the others woken in
        this loop turn)."""
        if self.phase is not Phase.PARKED and self.phase is not Phase.FOLLOWING:
            return
        self.unpark()
        self._enter(Phase.QUEUED)
        self.server.resumptions.add(self, outcome)

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

    # -- the response (on the loop) ---------------------------------------------------

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
        self._apply_status()
        pending = self.pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self._closing()
        self.response.check_length(data)  # before anything is freed: a 500 is still possible
        streaming = self.response.started
        self._enter(Phase.DONE)
        self._release()
        self.response.finish(data)
        if streaming:
            self.server.streaming -= 1

    def fail(self, why: str, exc_info: Any = None) -> None:
        """The application failed: 500 if nothing was sent yet, else cut the connection."""
        if exc_info is None:
            exc_info = sys.exc_info()
        log.error("%s: %s %s", why, self.response.method,
                  self.response.target.decode("latin-1"),
                  exc_info=exc_info if exc_info[0] is not None else None)
        if self._abandon():
            self._closing()
            self.response.fail()

    def client_gone(self) -> None:
        """The connection closed under a parked, streaming or running response."""
        if self._abandon():
            self.response.client_gone()

    def _abandon(self) -> bool:
        """End the exchange early (failure, client gone); False if it already ended.
        Application work on the pool goes on; its outcome is then dropped and what it
        holds closed on the pool."""
        was = self.phase
        if was is Phase.PARKED or was is Phase.FOLLOWING:
            self.unpark()
        if not self._enter(Phase.DONE):
            return False
        if self.timer is not None:  # a body slice waiting for the client
            self.timer.cancel()
            self.timer = None
        if self.response.started:
            self.server.streaming -= 1
        if was is Phase.QUEUED or was is Phase.RUNNING_APP:
            self._release_client()  # the pool's job closes the rest when it returns
        else:
            self._release()
        return True

    def _release_client(self) -> None:
        if self.counted:
            self.counted = False
            self.server.release_client(self)

    def _release(self) -> None:
        """Free what the response held: the per-client slot, and (on the pool) the
        coroutine and the result."""
        self._release_client()
        self._close_later()

    def _close_later(self) -> None:
        """Close what the application returned on a pool thread (inline: now)."""
        if self.driver is None and self.result is None:
            return
        if type(self.result) is list and self.driver is None:
            self.result = None
            return
        self.server.pool.submit(self.close_app, _closed, admit=False, label=self)


def _closed(outcome: Outcome) -> None:
    if outcome.error is not None:
        log.error("error closing a response", exc_info=outcome.exc_info())

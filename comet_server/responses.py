"""Django responses that the comet server finishes later: the public comet API for views.

- ``defer_in_time(response, seconds, url)``: send ``response`` now as the first chunk,
  then after ``seconds`` call the view found for ``url`` with ``response_prev``.
- ``wait_for_events(channels, after=..., timeout=..., render=...)``: a long-poll that
  answers with ``render(events, after)`` once events arrive (an empty list on timeout).
- ``event_stream(channels, after=..., render=...)``: Server-Sent Events for the
  browser's ``EventSource``: one request per client for minutes, each event rendered
  once for every open stream, resumed with ``Last-Event-ID`` after a drop.
- ``stream_events(...)``: an open chunked stream, one chunk per batch of events.

Under ``runcomet`` no thread is held while waiting.  Under any other server the same
response blocks the thread serving it, so views stay portable and testable.

Renderers.  A ``render`` is one of:

- a callable ``render(events, after) -> body`` (an ``HttpResponse``, ``bytes`` or
  ``str``); or
- a *staged renderer*: an object with ``prepare(events) -> prepared`` and
  ``render_prepared(prepared, events, after) -> body``, and optionally
  ``answer_key(prepared, after) -> hashable``.  ``prepare`` does the part of the
  work that does not depend on the waiter's cursor (database snapshots, presence...)
  and runs once per wake-up; ``render_prepared`` does the per-cursor rest.
  ``answer_key`` names what the answer depends on besides the events and
  ``prepared`` (default: ``after`` itself): waiters whose keys are equal get the same
  bytes from one ``render_prepared`` call.

Waiters woken together (one publish, one broker reconnect, or long-polls timing out in
the same loop turn) share the ``Delivery.memo``; in it a renderer's work is memoised
by the renderer and the events (their identity, not the list's), so a wake-up costs
one ``prepare`` plus one ``render_prepared`` (or one plain ``render``) per distinct
answer key.  Renderers are memo keys: pass a module-level function or a hashable
object whose instances compare equal (a frozen dataclass), not a fresh lambda.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import replace
from http.cookies import SimpleCookie
from typing import Any, Protocol

from django.core import signals
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import ResponseHeaders
from django.urls import resolve

from comet_server.push.default_hub import get_hub
from comet_server.push.events import Delivery, Event, resume_after
from comet_server.push.sse import ServerSentEvent, comment, retry_field
from comet_server.push.waits import (
    CometCoroutine,
    FollowEvents,
    Sleep,
    Status,
    StreamEnd,
    WaitForEvents,
    frame_all,
    frame_function,
    iterate_blocking,
)
from comet_server.serving.pool import in_pool_thread


class StagedRenderer(Protocol):
    """A renderer in two stages: once per wake-up, then per cursor (module docstring).

    May also define ``answer_key(prepared, after) -> Hashable``.
    """

    def prepare(self, events: list[Event]) -> Any: ...

    def render_prepared(self, prepared: Any, events: list[Event], after: Any) -> Any: ...


Renderer = Callable[[list[Event], Any], Any] | StagedRenderer


_NO_HEADERS = ResponseHeaders({})
_NO_COOKIES = SimpleCookie()


class DeferredResponse(StreamingHttpResponse):
    """A response whose body is produced by a comet coroutine.

    The comet server drives ``comet_coroutine()`` without holding a thread; any other
    server iterates the response, which runs the coroutine blocking.
    """

    _resource_closers: list[Callable[[], object]]  # Django's, undeclared in its stubs

    def __init__(self, coroutine_factory: Callable[[HttpRequest | None], CometCoroutine],
                 *args: Any, **kwargs: Any) -> None:
        self._wrapped: Iterator[bytes] | None = None  # before super(): its setter runs
        self._comet_driven = False
        super().__init__((), *args, **kwargs)
        self._coroutine_factory = coroutine_factory
        self.is_async = False
        self.comet_request: HttpRequest | None = None
        self.comet_step: _TimedStep | None = None  # set by defer_in_time

    def comet_coroutine(self) -> CometCoroutine:
        self._comet_driven = True
        if self._wrapped is not None:
            raise TypeError("a middleware replaced this DeferredResponse's streaming_content "
                            "(GZipMiddleware?); the comet server cannot suspend it")
        coroutine = self._coroutine_factory(self.comet_request)
        # The view and the middleware are done: what only the request holds (META, the
        # session, the user, uploaded files) may go now, not after a wait of minutes.
        # A parked response then costs a few dozen objects, which also keeps Python's
        # full garbage collections short.  A coroutine that needs the request (a
        # defer_in_time chain) keeps it through its own reference.
        self.comet_request = None
        # The server has the status and headers already (start_response): a parked
        # response need not keep its own copies.
        self.headers = _NO_HEADERS
        self.cookies = _NO_COOKIES
        closers: list[Callable[[], object]] = list(self._resource_closers)
        self._resource_closers.clear()
        for closer in closers:
            try:
                closer()
            except Exception:
                pass
        return coroutine

    @property
    def streaming_content(self) -> Iterator[bytes]:
        if self._wrapped is not None:
            return self._wrapped
        return iterate_blocking(self._coroutine_factory(self.comet_request), get_hub(),
                                self._restatus)

    @streaming_content.setter  # type: ignore[override]
    def streaming_content(self, value: Iterable[bytes]) -> None:
        # Django's test client wraps the content to close the response at the end.
        self._wrapped = None if value == () else iter(value)

    def __iter__(self) -> Iterator[bytes]:
        return self.streaming_content

    def _restatus(self, status: Status) -> None:
        """A ``Status`` under a server without comet: it already sent the view's
        status; Django's test client (which reads it from here) sees the new one."""
        self.status_code = int(status.line[:3])
        self.reason_phrase = status.line[4:]

    def close(self) -> None:
        """Close as Django does.  Under the comet server this runs on the pool thread
        that ran the response's last step, so ``request_finished`` (closing database
        connections) follows ``CONN_MAX_AGE`` per thread; with ``--threads 0`` (on the
        loop) it is sent once per loop turn: one publish may finish thousands of
        responses, and its receivers need not run for each of them."""
        if not self._comet_driven or in_pool_thread():
            super().close()
            return
        for closer in self._resource_closers:
            try:
                closer()
            except Exception:
                pass
        self._resource_closers.clear()
        self.closed = True
        _finish_request_soon(getattr(self, "_handler_class", None))  # set by WSGIHandler

    @property
    def content(self) -> bytes:  # type: ignore[override]
        """The whole body, waiting for it (handy in tests with Django's test client)."""
        return b"".join(self.streaming_content)


_finish_pending: set[Any] = set()


def _finish_request_soon(sender: Any) -> None:
    """Send ``request_finished`` for ``sender`` at the loop's next turn, once."""
    if sender in _finish_pending:
        return
    _finish_pending.add(sender)

    def finish() -> None:
        _finish_pending.discard(sender)
        signals.request_finished.send(sender=sender)

    get_hub().call_soon(finish)


def _body(result: Any) -> bytes:
    """The bytes of a view's or renderer's result."""
    if isinstance(result, HttpResponse):
        return result.content
    if isinstance(result, StreamingHttpResponse):
        return b"".join(result)
    if isinstance(result, str):
        return result.encode()
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result)
    raise TypeError(f"cannot make a response body of {type(result).__name__}")


class _TimedStep:
    """The deferral made by ``defer_in_time``: first response, then wait, then url."""

    __slots__ = ("response", "seconds", "url")

    def __init__(self, response: HttpResponse, seconds: float, url: str) -> None:
        self.response, self.seconds, self.url = response, seconds, url


def defer_in_time(response: HttpResponse, seconds: float, url: str) -> DeferredResponse:
    """Send ``response`` at once, then after ``seconds`` continue with the view for ``url``.

    That view is called as ``view(request, *args, response_prev=response, **kwargs)``;
    its body is the next chunk.  If it returns another ``defer_in_time`` the chain goes
    on, otherwise the stream ends.  Needs ``comet_server.middleware.CometMiddleware``.
    """
    step = _TimedStep(response, float(seconds), url)
    Sleep(step.seconds)  # validates seconds now, in the view

    def chain(request: HttpRequest | None) -> CometCoroutine:
        if request is None:
            raise RuntimeError("defer_in_time needs comet_server.middleware.CometMiddleware "
                               "in MIDDLEWARE to know the request")
        current: _TimedStep | None = step
        while current is not None:
            yield _body(current.response)
            yield Sleep(current.seconds)
            match = resolve(current.url.split("?", 1)[0])
            result = match.func(request, *match.args, response_prev=current.response,
                                **match.kwargs)
            current = getattr(result, "comet_step", None)
            if current is None:
                yield _body(result)

    deferred = DeferredResponse(chain, status=response.status_code)
    for name, value in response.items():
        deferred.headers[name] = value
    deferred.cookies = response.cookies
    deferred.comet_step = step
    return deferred


def _events_key(memo: dict[Any, Any], events: list[Event]) -> tuple[int, ...]:
    """The identity of a batch of events, whatever list holds them (the hub builds one
    list per cursor): the ids of the events, worked out once per list."""
    entry = memo.get(("events", id(events)))
    if entry is None or entry[0] is not events:
        # Keep the list (and so its events) alive with the memo: no id is reused.
        entry = memo[("events", id(events))] = (events, tuple(map(id, events)))
    return entry[1]


def _answer(result: Any) -> tuple[str | None, bytes]:
    """A renderer's result as (status line if it is an ``HttpResponse``, body)."""
    if isinstance(result, HttpResponse):
        return f"{result.status_code} {result.reason_phrase}", result.content
    return None, _body(result)


_MEMO_LOCK = threading.Lock()  # makes each memo's own lock, once


def _memo_lock(memo: dict[Any, Any]) -> threading.Lock:
    """The lock of a wake-up's memo: pool threads stepping waiters of one wake-up at
    once render each entry once (the second waits for the first's result)."""
    lock = memo.get(_MEMO_LOCK)
    if lock is None:
        with _MEMO_LOCK:
            lock = memo.get(_MEMO_LOCK)
            if lock is None:
                lock = memo[_MEMO_LOCK] = threading.Lock()
    return lock


def _render_once(delivery: Delivery, render: Renderer,
                 after: int | None) -> tuple[str | None, bytes]:
    """Render a delivery, sharing the work with every waiter woken alongside: one
    ``prepare`` per renderer and events, one body per distinct answer."""
    memo = delivery.memo
    body_key: tuple[Any, ...]
    if getattr(render, "prepare", None) is None:
        body_key = (render, id(delivery.events), after)
        body = memo.get(body_key)  # the common hit: no lock
        if body is not None and body[0] is delivery.events:
            return body[1]
    with _memo_lock(memo):
        return _render_locked(delivery, render, after)


def _render_locked(delivery: Delivery, render: Renderer,
                   after: int | None) -> tuple[str | None, bytes]:
    memo, events = delivery.memo, delivery.events
    events_key = _events_key(memo, events)
    prepare = getattr(render, "prepare", None)
    if prepare is None:
        body_key: tuple[Any, ...] = (render, events_key, after)
        body = memo.get(body_key)
        if body is None:
            body = memo[body_key] = _answer(render(events, after))  # type: ignore[operator]
            # The fast path's key: this list of events (kept alive by the entry).
            memo[(render, id(events), after)] = (events, body)
        return body
    prepared_key = ("prepared", render, events_key)
    if prepared_key in memo:
        prepared = memo[prepared_key]
    else:
        prepared = memo[prepared_key] = prepare(events)
    answer_key = getattr(render, "answer_key", None)
    key: Hashable = after if answer_key is None else answer_key(prepared, after)
    body_key = (render, events_key, "answer", key)
    body = memo.get(body_key)
    if body is None:
        staged: StagedRenderer = render  # type: ignore[assignment]  # it has prepare()
        body = memo[body_key] = _answer(staged.render_prepared(prepared, events, after))
    return body


def _channels(channels: str | Iterable[str]) -> tuple[str, ...]:
    return (channels,) if isinstance(channels, str) else tuple(channels)


def wait_for_events(channels: str | Iterable[str], *, after: int | None, render: Renderer,
                    timeout: float = 25.0, content_type: str = "application/json",
                    status: int = 200) -> DeferredResponse:
    """A long-poll: park until events past ``after`` arrive on ``channels`` or ``timeout``.

    ``render(events, after)`` (returning an ``HttpResponse``, ``bytes`` or ``str``) gives
    the body; ``events`` is an empty list on timeout.  An ``HttpResponse`` with another
    status than ``status`` replaces it (a 403 for a visitor whose access was revoked
    while waiting; under servers without comet only Django's test client sees it).
    Waiters woken together with the same cursor share one call to ``render``, so pass
    a module-level function, not a fresh lambda; a staged renderer (``prepare`` /
    ``render_prepared``, see the module docstring) also shares its ``prepare`` among
    waiters with different cursors.
    """
    wait = WaitForEvents(_channels(channels), after, float(timeout))

    def poll(request: HttpRequest | None) -> CometCoroutine:
        del request  # not needed while parked: let it be freed
        delivery = yield wait
        line, body = _render_once(delivery, render, wait.after)
        if line is not None and int(line[:3]) != status:  # a refusal found while waiting
            yield Status(line)
        yield body

    return DeferredResponse(poll, status=status, content_type=content_type)


def stream_events(channels: str | Iterable[str], *, after: int | None, render: Renderer,
                  first: bytes = b"", duration: float = 300.0, heartbeat: float = 25.0,
                  heartbeat_chunk: bytes = b"\n",
                  content_type: str = "text/plain; charset=utf-8") -> DeferredResponse:
    """An open chunked stream: ``first``, then ``render(events, cursor)`` per batch.

    The cursor moves past each batch.  Every ``heartbeat`` seconds without events
    ``heartbeat_chunk`` is sent (proxies keep the stream open); after ``duration``
    seconds the stream ends and the client reconnects from its last cursor.
    """
    names = _channels(channels)

    def stream(request: HttpRequest | None) -> CometCoroutine:
        import time

        del request  # not needed while streaming: let it be freed

        cursor = after
        deadline = time.monotonic() + duration
        if first:
            yield first
        while (left := deadline - time.monotonic()) > 0:
            delivery = yield WaitForEvents(names, cursor, min(heartbeat, left))
            if delivery.events:
                yield _render_once(delivery, render, cursor)[1]
                cursors = [e.cursor for e in delivery.events if e.cursor is not None]
                if cursors:
                    cursor = max(cursors + ([cursor] if cursor is not None else []))
            elif heartbeat_chunk:
                yield heartbeat_chunk

    return DeferredResponse(stream, content_type=content_type)


EventRenderer = Callable[[Event], "ServerSentEvent | str | None"]


class _Frames:
    """The bytes an event becomes on an event stream.  One instance per renderer
    (``frame_function``), hashed by identity: the server memoises a batch's frames under
    it for every stream, and looks them up once per stream."""

    __slots__ = ("render",)

    def __init__(self, render: EventRenderer) -> None:
        self.render = render

    def __call__(self, event: Event) -> bytes:
        result = self.render(event)
        if result is None:
            return b""
        if isinstance(result, str):
            result = ServerSentEvent(result)
        elif not isinstance(result, ServerSentEvent):
            raise TypeError(f"an event renderer returned {type(result).__name__}, "
                            "expected ServerSentEvent, str or None")
        if result.id is not None:
            raise ValueError("an event renderer may not set the id: it is the event's "
                             "cursor, on events that have one")
        if event.cursor is not None:
            result = replace(result, id=str(event.cursor))
        return result.encode()


PING = comment("ping")


def last_event_id(request: HttpRequest, param: str = "after") -> str | None:
    """Where a stream resumes: the ``Last-Event-ID`` header (what a browser sends when
    it reconnects by itself), else the ``param`` query parameter (the page's first
    connection), else ``None``.  Parsing and checking it is the view's business."""
    header = request.headers.get("Last-Event-ID")
    if header is not None and header.strip():
        return header.strip()
    return request.GET.get(param)


RESYNC = ServerSentEvent("{}", event="resync")


def event_stream(channels: str | Iterable[str], *, after: int | None,
                 render: EventRenderer, replay: Iterable[Event] = (), resync: bool = False,
                 first: Iterable[ServerSentEvent] = (), retry: float = 3.0,
                 retry_spread: float = 0.0,
                 lifetime: float | None = None, heartbeat: float | None = None,
                 on_close: Callable[[StreamEnd | None], object] | None = None,
                 ) -> DeferredResponse:
    """A Server-Sent Events stream (``text/event-stream``) of ``channels``.

    ``render(event)`` gives what an event becomes: a ``ServerSentEvent`` (data, event
    name), a ``str`` (the data of a ``message`` event) or ``None`` (skipped).  It is
    called once per event for every stream it reaches, so pass a module-level function
    or a hashable object, as for ``wait_for_events``.  An event with a cursor carries
    it as its ``id:`` (the browser's resume point); signals carry none.  An event
    ``render`` raises on is left out of the streams (and logged).

    Streams follow cursors: an event that arrives with a cursor at or below what a
    stream already has is not sent to it.  With several publishing processes events
    can reach a process out of cursor order (or not at all, while a broker is away),
    so a stream that must not miss one frames from the store, not from the payload:
    the chat's message frames carry every message past the last one framed.

    The view resumes the client: ``after`` is the cursor it has (see
    ``last_event_id``) and ``replay`` the events it missed, oldest first, read from
    the application's durable store (the server adds any its short history holds past
    them).  When the gap is more than the application can replay, it passes
    ``resync=True`` instead: the client gets one ``resync`` event (data ``{}``) and
    reloads what it shows.  ``first`` are events sent before all that (a snapshot the
    page needs at once, say; a client can also take the first event as proof that
    nothing in between buffers the stream).

    The stream starts with ``retry:`` (seconds before the browser reconnects; with
    ``retry_spread`` s, each stream's is drawn from ``retry ± retry_spread × retry``,
    so the pages of a drained process do not all come back in the same instant), pings
    (a comment line) after ``heartbeat`` seconds without a write and ends after
    ``lifetime`` seconds less up to 10% (``None``: the server's ``--stream-heartbeat``
    and ``--stream-lifetime``), when the server drains, or when events may have been
    lost (a broker reconnect); the browser then reconnects with ``Last-Event-ID``.
    A client that lets ``--max-stream-buffer`` bytes pile up unread is cut.
    ``on_close(ended)`` runs once when the stream ends, whatever ends it: ``ended`` is
    a ``StreamEnd`` when the server ended it (its lifetime, a drain, lost events: the
    client comes back at once) and ``None`` when the client went away or was cut
    (presence, say: a drain of thousands of streams need not write for each).

    Under any server other than runcomet the stream holds its thread while open.
    """
    names = _channels(channels)
    frames = frame_function(_Frames, render, "event_stream")
    replayed = list(replay)
    cursor = resume_after(replayed, after)
    if not 0 <= retry_spread < 1:
        raise ValueError(f"retry_spread must be in [0, 1), got {retry_spread!r}")
    spread = retry_spread * (2 * random.random() - 1) if retry_spread else 0.0
    head = [retry_field(round(retry * (1 + spread) * 1000))]
    head.extend(event.encode() for event in first)
    if resync:
        head.append(RESYNC.encode())
    head.append(frame_all(frames, replayed))
    opening = b"".join(head)
    follow = FollowEvents(names, cursor, frames, lifetime, heartbeat, PING)

    def stream(request: HttpRequest | None) -> CometCoroutine:
        del request  # not needed while streaming: let it be freed
        ended: StreamEnd | None = None
        try:
            yield opening
            ended = yield follow
        finally:
            if on_close is not None:
                on_close(ended)

    response = DeferredResponse(stream, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response

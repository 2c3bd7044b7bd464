"""Plain WSGI apps for the benchmarks: no Django, so the figures measure the server.

``hello`` is the request/response baseline (also served by gunicorn for comparison);
``comet`` parks ``GET /wait`` on the hub and answers it when ``POST /publish`` fires;
``GET /events?after=N`` is an event stream of the same channel, and
``GET /poll?after=N`` a long-poll that resumes from a cursor (the re-polling client
that streams are compared with).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

from comet_server.push.default_hub import get_hub
from comet_server.push.events import Delivery, Event
from comet_server.push.sse import retry_field
from comet_server.push.waits import (
    CometCoroutine,
    FollowEvents,
    WaitForEvents,
    iterate_blocking,
)

CHANNEL = "bench"
WAIT_TIMEOUT = 120.0
HELLO = b"Hello, world!"
_PLAIN = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
_cursors = itertools.count(1)


def hello(environ, start_response):
    """The smallest useful response: what a server costs per request."""
    start_response("200 OK", _PLAIN)
    return [HELLO]


def io_bound(environ, start_response):
    """A view that waits 5 ms on I/O (a database round trip, say), then says hello."""
    time.sleep(0.005)
    return hello(environ, start_response)


def _seconds(environ) -> float:
    query = environ.get("QUERY_STRING", "")
    return float(query[2:]) if query.startswith("s=") else 1.0


def _spin(seconds: float) -> int:
    """Pure Python for ``seconds``: holds the GIL as a CPU-bound view does."""
    end = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < end:
        count += 1
    return count


def _render(delivery: Delivery) -> bytes:
    """One JSON array per delivery, built once and shared through ``delivery.memo``."""
    body = delivery.memo.get(CHANNEL)
    if body is None:
        body = b"[" + b",".join(e.to_json() for e in delivery.events) + b"]"
        delivery.memo[CHANNEL] = body
    return body


class _Wait:
    """A parked ``GET /wait``; holds nothing per request beyond its generator.

    The body length is only known after the delivery, so no Content-Length here:
    the server frames the finished body itself.
    """

    __slots__ = ()

    def comet_coroutine(self) -> CometCoroutine:
        delivery = yield WaitForEvents((CHANNEL,), None, WAIT_TIMEOUT)
        yield _render(delivery)

    def __iter__(self) -> Iterator[bytes]:
        # Under a server without comet support the same wait blocks a thread.
        return iterate_blocking(self.comet_coroutine(), get_hub())


_WAIT = _Wait()  # stateless, so every waiter shares it: nothing allocated per request


def sse_frame(event: Event) -> bytes:
    """An event as a Server-Sent Events message, its cursor as the id."""
    return b"id: %d\ndata: %b\n\n" % (event.cursor or 0, event.to_json())


class _Stream:
    """``GET /events``: an event stream from a cursor, as ``event_stream`` makes one
    (without Django: the figures measure the server)."""

    __slots__ = ("after",)

    def __init__(self, after: int | None) -> None:
        self.after = after

    def comet_coroutine(self) -> CometCoroutine:
        yield retry_field(3000)
        yield FollowEvents((CHANNEL,), self.after, sse_frame, ping=b":\n\n")

    def __iter__(self) -> Iterator[bytes]:
        return iterate_blocking(self.comet_coroutine(), get_hub())


class _Poll:
    """``GET /poll?after=N``: a long-poll answered with the events past N, one SSE
    message each (the same bytes a stream gets, so clients parse both alike)."""

    __slots__ = ("after",)

    def __init__(self, after: int | None) -> None:
        self.after = after

    def comet_coroutine(self) -> CometCoroutine:
        delivery = yield WaitForEvents((CHANNEL,), self.after, WAIT_TIMEOUT)
        key = ("poll", id(delivery.events))
        body = delivery.memo.get(key)
        if body is None:
            body = delivery.memo[key] = b"".join(map(sse_frame, delivery.events))
        yield body

    def __iter__(self) -> Iterator[bytes]:
        return iterate_blocking(self.comet_coroutine(), get_hub())


def _after(environ) -> int | None:
    query = environ.get("QUERY_STRING", "")
    if query.startswith("after="):
        return int(query[6:])
    return None


def comet(environ, start_response):
    """``GET /wait`` parks; ``POST /publish`` wakes every waiter with one event."""
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
    if path == "/wait" and method == "GET":
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Cache-Control", "no-store")])
        return _WAIT
    if path == "/events" and method == "GET":
        start_response("200 OK", [("Content-Type", "text/event-stream"),
                                  ("Cache-Control", "no-store")])
        return _Stream(_after(environ))
    if path == "/poll" and method == "GET":
        start_response("200 OK", [("Content-Type", "text/event-stream"),
                                  ("Cache-Control", "no-store")])
        return _Poll(_after(environ))
    if path == "/publish" and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        text = environ["wsgi.input"].read(length).decode("utf-8", "replace") if length else ""
        event = get_hub().publish(CHANNEL, {"text": text or "ping"}, next(_cursors))
        body = b'{"published":%d}' % event.cursor
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/hello":
        return hello(environ, start_response)
    if path == "/io":
        return io_bound(environ, start_response)
    if path == "/sleep":  # a slow view waiting on I/O: ?s=seconds
        time.sleep(_seconds(environ))
        return hello(environ, start_response)
    if path == "/spin":  # a CPU-bound view: ?s=seconds
        _spin(_seconds(environ))
        return hello(environ, start_response)
    body = b"not found\n"
    start_response("404 Not Found", [("Content-Type", "text/plain"),
                                     ("Content-Length", str(len(body)))])
    return [body]

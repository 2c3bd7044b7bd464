"""WebSockets for ordinary sync Django views: ``websocket(request, ...)``.

A view answers a WebSocket handshake with ``websocket(request, channels=...,
render=..., on_message=...)``, as it would answer an event stream with
``event_stream``.  Under ``runcomet`` the connection then leaves HTTP: each event
published on ``channels`` becomes one text message (``render(event)``, made once per
event for every socket following the channel), and each message the client sends
is handed to ``on_message(socket, message)`` on the server's thread pool, one at a
time per socket, in order.  ``socket.send(...)`` replies to that socket only;
``publish`` reaches everyone.  An exception in ``on_message`` closes the socket with
1011 and is logged.

Security: WebSocket has no CORS, so a page on any site could open a socket to
this one with the visitor's cookies (cross-site WebSocket hijacking).  The
handshake's ``Origin`` must therefore be the site's own: the request's scheme and
host (a host ``ALLOWED_HOSTS`` accepts) or one of ``CSRF_TRUSTED_ORIGINS``; anything
else gets 403.  A handshake without ``Origin`` does not come from a browser page
(browsers always send it) and is let through: it carries no victim's cookies.

Under any other server (runserver, gunicorn) a handshake gets 501 with a short
explanation, and a plain GET gets 400: a client falls back to the event stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.utils.http import is_same_domain

from comet_server.push.events import Event, resume_after
from comet_server.push.waits import SocketHandle, SocketPlan, frame_function

__all__ = ["Socket", "WebSocketResponse", "origin_allowed", "refuse", "websocket"]

HANDSHAKE_KEY = "comet.websocket"  # the server's mark of an accepted handshake


class WebSocketResponse(HttpResponse):
    """A view's answer to an accepted handshake: the comet server reads
    ``comet_websocket`` and switches the connection (the status line and headers
    are the server's 101; this response's own are never sent)."""

    def __init__(self, plan: SocketPlan) -> None:
        super().__init__(status=101)
        self.comet_websocket = plan


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Socket:
    """One open WebSocket as ``on_message`` sees it: ``send`` a reply (a ``str`` as
    text, ``bytes`` as binary, anything else as JSON text) to this socket only, or
    ``close`` it.  Safe from any thread."""

    __slots__ = ("handle",)

    def __init__(self, handle: SocketHandle) -> None:
        self.handle = handle

    def send(self, message: Any) -> None:
        self.handle.send(message if isinstance(message, bytes) else _text(message))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.handle.close(code, reason)


class _Payloads:
    """``render`` as the server's frame function: the UTF-8 payload of an event's
    message (``b""``: skipped).  Hashable like the render, so a batch is framed once
    for every socket that shares it."""

    __slots__ = ("render",)

    def __init__(self, render: Callable[[Event], Any]) -> None:
        self.render = render

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Payloads) and other.render == self.render

    def __hash__(self) -> int:
        return hash(self.render)

    def __call__(self, event: Event) -> bytes:
        result = self.render(event)
        return b"" if result is None else _text(result).encode()


class _OnMessage:
    """The application's ``on_message`` as a pool job: Django's database connections
    are looked after as a request's are (before and after)."""

    __slots__ = ("handler",)

    def __init__(self, handler: Callable[[Socket, str | bytes], object]) -> None:
        self.handler = handler

    def __call__(self, handle: SocketHandle, message: str | bytes) -> None:
        close_old_connections()
        try:
            self.handler(Socket(handle), message)
        finally:
            close_old_connections()


class _OnClose:
    __slots__ = ("handler",)

    def __init__(self, handler: Callable[[int | None], object]) -> None:
        self.handler = handler

    def __call__(self, code: int | None) -> None:
        close_old_connections()
        try:
            self.handler(code)
        finally:
            close_old_connections()


def origin_allowed(request: HttpRequest) -> bool:
    """The handshake comes from a page of this site (or from no page at all)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    try:
        own = f"{request.scheme}://{request.get_host()}"
    except DisallowedHost:
        return False
    if origin.lower() == own.lower():
        return True
    parsed = urlsplit(origin)
    for trusted in getattr(settings, "CSRF_TRUSTED_ORIGINS", ()):
        if origin == trusted:
            return True
        allowed = urlsplit(trusted)
        if "*" in allowed.netloc and allowed.scheme == parsed.scheme \
                and is_same_domain(parsed.netloc, allowed.netloc.lstrip("*")):
            return True
    return False


def _refusal(status: int, text: str) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")


REFUSED = 4000  # + the HTTP status: the close code of a refusal told in-band


def refuse(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """A view's refusal (a 400, 403, 404... ``response``) as a socket can hear it.

    A browser's WebSocket never sees the status of a refused handshake (only that it
    failed, as when the server is down), so a client could not tell "start over" from
    "retry later".  For a handshake under runcomet from this site's origin, the socket
    is accepted, sends one message ``{"event": "refused", "data": {"status", ...the
    response's JSON}}`` and closes with 4000 + the status; otherwise (a plain GET,
    another server, a foreign origin) the response goes out as it is.
    """
    if HANDSHAKE_KEY not in request.META or not origin_allowed(request):
        return response
    data: dict[str, Any] = {"status": response.status_code}
    try:
        body = json.loads(response.content)
    except ValueError:
        body = {"error": response.content.decode("utf-8", "replace")}
    if isinstance(body, dict):
        data.update(body)
    plan = SocketPlan(opening=(_text({"event": "refused", "data": data}).encode(),),
                      close=(REFUSED + response.status_code, "refused"))
    return WebSocketResponse(plan)


def websocket(request: HttpRequest, *, channels: str | Iterable[str] = (),
              after: int | None = None, render: Callable[[Event], Any] | None = None,
              replay: Iterable[Event] = (), first: Iterable[Any] = (),
              on_message: Callable[[Socket, str | bytes], object] | None = None,
              on_close: Callable[[int | None], object] | None = None,
              lifetime: float | None = None) -> HttpResponse:
    """Accept a WebSocket handshake (see the module docstring).

    ``first`` are messages sent first (``str`` or JSON-able); ``replay`` the events the
    client missed, oldest first, from the application's store, rendered like the
    rest; then every event on ``channels`` past ``after`` as ``render(event)`` (a
    ``str``, a JSON-able object, or ``None`` to skip it).  ``render`` must be
    hashable (a module-level function or a frozen dataclass), as for
    ``event_stream``.  ``on_message(socket, message)`` gets each message the client
    sends (``str`` or ``bytes``); ``on_close(code)`` runs once when the socket ends
    (the close code, or ``None`` when the connection was lost without one).
    ``lifetime``: seconds after which the server closes the socket (1000, reason
    ``lifetime``; less up to 10%) and the client resumes, as an event stream's does:
    what a page holds for its visit (presence) is renewed, and sockets rebalance
    across processes.  ``None``: open until either side closes it.
    """
    if HANDSHAKE_KEY not in request.META:
        if "websocket" in request.headers.get("Upgrade", "").lower():
            return _refusal(501, "WebSocket needs the comet server (manage.py runcomet); "
                                 "this server cannot upgrade: use the event stream")
        return _refusal(400, "a WebSocket endpoint: connect with a WebSocket client")
    if not origin_allowed(request):
        return _refusal(403, "WebSocket refused: Origin is not this site's")
    names = (channels,) if isinstance(channels, str) else tuple(channels)
    frame = None
    if names:
        if render is None:
            raise TypeError("websocket() with channels needs a render")
        frame = frame_function(_Payloads, render, "websocket")
    replayed = list(replay)
    after = resume_after(replayed, after)
    opening = [_text(message).encode() for message in first]
    if frame is not None:
        opening.extend(frame(event) for event in replayed)
    plan = SocketPlan(names, after, frame, tuple(p for p in opening if p),
                      _OnMessage(on_message) if on_message is not None else None,
                      _OnClose(on_close) if on_close is not None else None,
                      None if lifetime is None else float(lifetime))
    return WebSocketResponse(plan)

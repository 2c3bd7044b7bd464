"""The chat over WebSocket: ``/rooms/<slug>/socket`` and ``/rooms/socket`` (the lobby).

The same events as the event streams (``streams``), from the same renders: each
server message is ``{"event": name, "id": cursor (cursored events only), "data":
the object the SSE event carries}``, starting with ``ready`` (a room) or ``rooms``
(the lobby).  Resuming is the stream's: ``?after=<id>`` replays what the database
holds past it, or sends ``resync`` when that is more than ``MAX_BATCH`` (no ``after``:
from now).

A room socket takes client messages ``{"type": "post", "text": ...}`` and
``{"type": "typing"}``.  A handshake the view refuses (a cursor the site does not
have, a room this visitor may not see) gets ``refused`` and a close 4000 + status
(``comet_server.sockets.refuse``): the page starts over, as on a long-poll's 400.
A post goes through ``api.post``, the very code of an HTTP
post (validation, the guest's name rules, the rate limits), as the visitor of the
handshake: the session and user it carried.  A refusal comes back on this socket as
``{"event": "error", "data": {"status", "error", "retry_after"}}``; a post that
passes comes back, like everyone's, as a ``messages`` event.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import partial
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.views.decorators.http import require_GET

from chatsite.rooms import (
    access,
    api,
    limits,
    moderation,
    queries,
    services,
    stream_frames,
    streams,
)
from chatsite.rooms.conf import stream_lifetime
from chatsite.rooms.events import LOBBY, ClientMessage, Frame
from chatsite.rooms.identity import current_nick, current_user
from chatsite.rooms.models import Room
from comet_server import Event, ServerSentEvent
from comet_server.sockets import Socket, refuse, websocket

log = logging.getLogger(__name__)


def message_of(frame: ServerSentEvent, cursor: int | None) -> str:
    """An SSE frame of the chat as a socket message (its data is JSON already)."""
    head = f'{{"event":{json.dumps(frame.event or "message")},'
    if cursor is not None:
        head += f'"id":{cursor},'
    return f'{head}"data":{frame.data}}}'


# What a refused client message is told the socket takes.
CLIENT_MESSAGES = "A message is " + " or ".join(
    json.dumps(shape) for shape in ({"type": ClientMessage.POST.value, "text": "..."},
                                    {"type": ClientMessage.TYPING.value})) + "."

@dataclass(frozen=True, slots=True)
class SocketFrames:
    """A stream render as a socket render (hashable: one message per event for every
    socket of the room, made once)."""

    frames: stream_frames.RoomFrames | stream_frames.LobbyFrames

    def __call__(self, event: Event) -> str | None:
        frame = self.frames(event)
        return None if frame is None else message_of(frame, event.cursor)


@dataclass(slots=True)
class Visitor:
    """Who a socket speaks for: what its handshake's session and user were, kept
    small (not the whole request) and turned back into a request per message, so the
    chat's own request-based rules apply unchanged."""

    session_key: str | None
    user_id: int | None
    address: str

    @classmethod
    def of(cls, request: HttpRequest) -> Visitor:
        user = current_user(request)
        return cls(request.session.session_key, user.pk if user is not None else None,
                   limits.client_address(request))

    def request(self, text: Any = None) -> HttpRequest:
        """A request as this visitor (its session loaded afresh, as an HTTP request's
        would be): what ``api.post`` and the limits read."""
        request = HttpRequest()
        request.method = "POST"
        request.META["REMOTE_ADDR"] = self.address
        engine = import_module(settings.SESSION_ENGINE)
        request.session = engine.SessionStore(self.session_key)
        user: Any = AnonymousUser()
        if self.user_id is not None:
            user = get_user_model().objects.filter(pk=self.user_id, is_active=True).first() \
                or AnonymousUser()
        request.user = user
        post = QueryDict(mutable=True)
        if isinstance(text, str):
            post["text"] = text
        request.POST = post
        return request

    def done(self, request: HttpRequest) -> None:
        """Keep what the message changed in the session (a guest's name), and the key
        of a session it had to create (the rate limits count per session)."""
        session = request.session
        if session.modified:
            session.save()
        self.session_key = session.session_key


def _error(socket: Socket, status: int, error: str, retry_after: int | None = None) -> None:
    socket.send({"event": "error", "data": {"status": status, "error": error,
                                            "retry_after": retry_after}})


def _refusal(socket: Socket, response: JsonResponse) -> None:
    body = json.loads(response.content)
    _error(socket, response.status_code, body.get("error", ""), body.get("retry_after"))


class RoomMessages:
    """``on_message`` of a room socket: posts and typing signals as this visitor."""

    __slots__ = ("room_id", "visitor")

    def __init__(self, room_id: int, visitor: Visitor) -> None:
        self.room_id = room_id
        self.visitor = visitor

    def __call__(self, socket: Socket, message: str | bytes) -> None:
        try:
            frame = json.loads(message)
        except ValueError:
            _error(socket, 400, "A message is a JSON object.")
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind not in set(ClientMessage):
            _error(socket, 400, CLIENT_MESSAGES)
            return
        room = Room.objects.filter(pk=self.room_id).first()
        request = self.visitor.request(frame.get("text"))
        if room is None or not access.can_see(room, request.user):
            _error(socket, 404, "No such room.")
            socket.close(1008, "no such room")
            return
        try:
            if kind == ClientMessage.POST:
                response = api.post(request, room)
                if response.status_code >= 400:
                    _refusal(socket, response)
            else:
                self._typing(socket, request, room)
        finally:
            self.visitor.done(request)

    @staticmethod
    def _typing(socket: Socket, request: HttpRequest, room: Room) -> None:
        nick = current_nick(request)
        if nick is None:
            _error(socket, 400, "Choose a name first.")
            return
        limited = limits.check_typing(request)
        if limited is not None:
            _error(socket, 429, limited.message, limited.retry_after)
            return
        services.signal_typing(room, nick)


def _socket_cursor(request: HttpRequest) -> int | JsonResponse:
    """``?after=`` as the stream reads it; without one, from now (the newest id)."""
    if "after" not in request.GET:
        return queries.latest_message_id()
    return streams.stream_cursor(request)


@require_GET
def room_socket(request: HttpRequest, slug: str) -> HttpResponse:
    """A room's WebSocket: ``ready`` (and ``changes`` missed since ``?changes=``),
    then the stream's events; posts and typing signals from the client."""
    after = _socket_cursor(request)
    if isinstance(after, JsonResponse):
        return refuse(request, after)
    try:
        room = access.room_or_404(request, slug)
    except Http404:
        return refuse(request, JsonResponse({"error": "No such room."}, status=404))
    try:
        changes_after = moderation.changes_cursor(request.GET.get("changes"), room.id)
    except ValueError as exc:
        return refuse(request, JsonResponse({"error": f"changes: {exc}"}, status=400))
    start = streams.room_start(room, after, changes_after)
    first = [message_of(event, None) for event in start.first]
    if start.resync:
        first.append(message_of(ServerSentEvent("{}", event=Frame.RESYNC), None))
    response = websocket(
        request, channels=[start.channel], after=start.after,
        render=SocketFrames(stream_frames.RoomFrames(room.id)), first=first, replay=start.replay,
        on_message=RoomMessages(room.id, Visitor.of(request)),
        on_close=partial(_socket_closed, room.id, current_nick(request)),
        lifetime=stream_lifetime())
    if response.status_code == 101:  # accepted: this socket now holds presence
        streams.take_presence(request, room, stream_lifetime())
        stream_frames.ledger.opened(room.id, start.newest)
    return response


def _socket_closed(room_id: int, nick: str | None, code: int | None) -> None:
    """As a stream's end: a drain (1001) keeps the presence lease."""
    from comet_server import StreamEnd

    streams.stream_closed(room_id, nick, StreamEnd.DRAIN if code == 1001 else None)


@require_GET
def lobby_socket(request: HttpRequest) -> HttpResponse:
    """The room list's WebSocket: a ``rooms`` snapshot first, then one per change."""
    after = _socket_cursor(request)
    if isinstance(after, JsonResponse):
        return refuse(request, after)
    latest = queries.latest_message_id()
    viewer = request.user.pk if request.user.is_authenticated else None
    return websocket(request, channels=[LOBBY], after=max(after, latest),
                     render=SocketFrames(stream_frames.LobbyFrames(viewer)),
                     first=[message_of(stream_frames.lobby_snapshot(latest, viewer), None)],
                     lifetime=stream_lifetime())

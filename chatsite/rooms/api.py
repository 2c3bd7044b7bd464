"""The JSON API of the chat: post, read older, long-poll updates, typing and leaving.

This is the contract for other clients too; see README in this package.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chatsite.rooms import (
    access,
    conf,
    limits,
    moderation,
    names,
    queries,
    services,
    updates,
)
from chatsite.rooms.events import LOBBY, room_channel
from chatsite.rooms.identity import current_nick, current_user, remember_nick
from chatsite.rooms.models import Room
from chatsite.rooms.validation import (
    check_cursor_known,
    clean_text,
    parse_cursor,
)
from comet_server import wait_for_events


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def json_404(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view`` with its ``Http404`` (``access.room_or_404``) answered as the API's JSON
    error, ``{"error": ...}`` with status 404."""
    @wraps(view)
    def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Http404 as exc:
            return _error(str(exc) or "Not found.", 404)
    return answer


@require_http_methods(["GET", "HEAD", "POST"])
@json_404
def messages(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: older messages (``?before=<id>``); POST: a new message (201)."""
    room = access.room_or_404(request, slug)
    if request.method == "POST":
        return post(request, room)
    return _older(request, room)


def post(request: HttpRequest, room: Room) -> JsonResponse:
    """Post ``request.POST["text"]`` in ``room`` as this visitor: the rate limits, the
    guest's name rules and the validation of every post, whether it came over HTTP or
    a WebSocket (``sockets``).  201 with the message, or the refusal."""
    limited = limits.check_post(request)
    if limited is not None:
        return limited.response()
    user = current_user(request)
    try:
        text = clean_text(request.POST.get("text"))
        nick = current_nick(request)
        if user is None:
            if not access.guests_may_post(room):
                return _error("Log in to post in this room.", 403)
            # A guest's name is theirs only while their session holds it (names.py).
            nick = names.claim(request, nick or request.POST.get("nick"))
            remember_nick(request, nick)
        assert nick is not None
        message = services.post_message(room, nick, text, user=user)
    except names.NameTaken as exc:
        return _error(str(exc), 409)
    except ValueError as exc:
        return _error(str(exc))
    services.join(room, nick)  # whoever posts is here
    return JsonResponse(message.as_json(), status=201)


def _older(request: HttpRequest, room: Room) -> JsonResponse:
    rows = room.messages.order_by("-id")
    before = request.GET.get("before")
    if before is not None:
        try:
            rows = rows.filter(id__lt=parse_cursor(before))
        except ValueError as exc:
            return _error(f"before: {exc}")
    page = list(rows[:conf.PAGE_SIZE + 1])
    return JsonResponse({
        "messages": [m.as_json() for m in reversed(page[:conf.PAGE_SIZE])],
        "has_more": len(page) > conf.PAGE_SIZE,
    })


def _after(request: HttpRequest) -> tuple[int, int] | JsonResponse:
    """``(after, newest)`` for an updates poll: its cursor and the newest message id on
    the site; or a 400 when the cursor is not a message id or is above ``newest``."""
    try:
        after = parse_cursor(request.GET.get("after"))
        newest = queries.latest_message_id()
        return check_cursor_known(after, newest), newest
    except ValueError as exc:
        return _error(f"after: {exc}")


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@json_404
def room_updates(request: HttpRequest, slug: str) -> HttpResponse:
    """Long-poll: messages after ``after`` at once if any, else park until an event."""
    cursor = _after(request)
    if isinstance(cursor, JsonResponse):
        return cursor
    after, newest = cursor
    room = access.room_or_404(request, slug)
    try:
        changes_after = moderation.changes_cursor(request.GET.get("changes"), room.id)
    except ValueError as exc:
        return _error(f"changes: {exc}")
    nick = current_nick(request)
    if nick is not None:
        services.join(room, nick)
        if current_user(request) is None:
            names.keep_alive(request, nick)
    # At the site's newest message (a page re-polling after an answer) nothing can be
    # pending: no query.
    pending = queries.messages_after(room.id, after) if after < newest else []
    changes = moderation.changes_after(room.id, changes_after)
    if pending or changes:
        body = updates.room_answer(room.id, after, pending, changes=changes)
        return _no_store(HttpResponse(body, content_type="application/json"))
    render = updates.RoomUpdates(room.id, private=room.private,
                                 viewer=request.user.pk, changes_after=changes_after)
    return _no_store(wait_for_events(
        [room_channel(room.slug)], after=after, render=render, timeout=conf.poll_timeout()))


@require_GET
def lobby_updates(request: HttpRequest) -> HttpResponse:
    """Long-poll of the room list: a snapshot at once if messages were posted since
    ``after`` (the latest message id the page knows), else when something changes."""
    cursor = _after(request)
    if isinstance(cursor, JsonResponse):
        return cursor
    after, latest = cursor
    viewer = request.user.pk
    if latest > after:
        return _no_store(HttpResponse(updates.lobby_answer(after, viewer),
                                      content_type="application/json"))
    render = updates.render_lobby if viewer is None else updates.LobbyUpdates(viewer)
    return _no_store(wait_for_events([LOBBY], after=after, render=render,
                                     timeout=conf.poll_timeout()))


@require_POST
@json_404
def typing(request: HttpRequest, slug: str) -> HttpResponse:
    """Signal that this visitor is typing (204); pages show it for a few seconds."""
    room = access.room_or_404(request, slug)
    nick = current_nick(request)
    if nick is None:
        return _error("Choose a name first.")
    limited = limits.check_typing(request)
    if limited is not None:
        return limited.response()
    services.signal_typing(room, nick)
    return HttpResponse(status=204)


@require_POST
@json_404
def leave(request: HttpRequest, slug: str) -> HttpResponse:
    """The page is going away (sendBeacon on pagehide): drop this visitor's presence."""
    room = access.room_or_404(request, slug)
    nick = current_nick(request)
    if nick is not None:
        services.leave(room, nick)
    return HttpResponse(status=204)

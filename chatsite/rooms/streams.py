"""The chat's Server-Sent Events: one stream per room page and one for the lobby.

Resuming follows the long-poll's rules: the cursor (``Last-Event-ID`` when the
browser reconnects by itself, else ``?after=``) is a message id, at most the newest
on the site, else 400 JSON.  A room stream replays the messages past it from the
database (the truth), or sends ``resync`` when they are more than ``MAX_BATCH``; the
lobby stream starts with a fresh snapshot instead.  See README in this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from chatsite.rooms import access, moderation, names, presence, queries, stream_frames
from chatsite.rooms.api import json_404
from chatsite.rooms.conf import MAX_BATCH, stream_lifetime
from chatsite.rooms.events import LOBBY, Frame, room_channel
from chatsite.rooms.identity import current_nick, current_user
from chatsite.rooms.models import Room
from chatsite.rooms.stream_frames import (
    LobbyFrames,
    RoomFrames,
    changes_frame,
    dumps,
    ledger,
    lobby_snapshot,
)
from chatsite.rooms.validation import check_cursor_known, parse_cursor
from comet_server import Event, ServerSentEvent, StreamEnd, event_stream, last_event_id

# Pages reconnect 1.5 to 4.5 s after their stream ends (3 s ± 50%): when a process
# drains, or the broker reconnects, its thousands of pages do not all come back at once.
RETRY_SPREAD = 0.5
STREAM_RETRY = 3.0  # seconds: the mean of the streams' ``retry:``


def stream_cursor(request: HttpRequest) -> int | JsonResponse:
    try:
        after = parse_cursor(last_event_id(request))
        return check_cursor_known(after, queries.latest_message_id())
    except ValueError as exc:
        return JsonResponse({"error": f"after: {exc}"}, status=400)


def stream_closed(room_id: int, nick: str | None, ended: StreamEnd | None) -> None:
    """``on_close`` of a room stream: this process frames for one stream fewer, and the
    nick's presence lapses after the presence window unless the page comes back.  Not
    when the server drains: this process is going away, its pages reopen their
    streams elsewhere at once (their leases stand), and a drain of thousands of
    streams writes nothing."""
    ledger.closed(room_id)
    if nick is not None and ended is not StreamEnd.DRAIN:
        presence.leases.release(room_id, nick)


@dataclass(frozen=True, slots=True)
class RoomStart:
    """Where a page's stream or socket of a room starts: past ``after`` (the newest
    message when the page missed too many: ``resync``), the messages it missed to
    replay, and its first frames (``ready``, the moderation changes it missed)."""

    channel: str
    after: int
    replay: list[Event]
    resync: bool
    first: list[ServerSentEvent]
    newest: int


def room_start(room: Room, after: int, changes_after: int) -> RoomStart:
    channel = room_channel(room.slug)
    missed = queries.messages_after(room.id, after, limit=MAX_BATCH + 1)
    resync = len(missed) > MAX_BATCH
    if resync:
        after, missed = queries.newest_message_id(room.id), []
    newest = max([after] + [m["id"] for m in missed])
    first = [ServerSentEvent(dumps({"presence": presence.present_nicks(room.id),
                                    "cursor": newest}), event=Frame.READY)]
    changes = moderation.changes_after(room.id, changes_after)
    if changes:
        first.append(changes_frame(changes))
    return RoomStart(channel, after, [stream_frames.stored_event(channel, m) for m in missed],
                     resync, first, newest)


def take_presence(request: HttpRequest, room: Room, lifetime: float) -> None:
    """An open stream or socket of a room: its visitor is present for as long as it
    lasts (and a guest's name stays theirs)."""
    nick = current_nick(request)
    if nick is not None:
        presence.leases.take(room, nick, lifetime)
        if current_user(request) is None:
            names.keep_alive(request, nick)

@require_GET
@json_404
def room_events(request: HttpRequest, slug: str) -> HttpResponse:
    """``text/event-stream`` of a room: ``ready`` (and ``changes`` missed since
    ``?changes=``), then ``messages`` (with ids), ``changes``, ``presence``, ``typing``,
    ``membership``; ``resync`` when the page is too far behind."""
    after = stream_cursor(request)
    if isinstance(after, JsonResponse):
        return after
    room = access.room_or_404(request, slug)
    try:
        changes_after = moderation.changes_cursor(request.GET.get("changes"), room.id)
    except ValueError as exc:
        return JsonResponse({"error": f"changes: {exc}"}, status=400)
    lifetime = stream_lifetime()
    take_presence(request, room, lifetime)  # before ``ready`` lists who is here
    start = room_start(room, after, changes_after)
    ledger.opened(room.id, start.newest)
    nick = current_nick(request)
    return event_stream(
        [start.channel], after=start.after, render=RoomFrames(room.id), first=start.first,
        replay=start.replay, resync=start.resync,
        lifetime=lifetime, retry=STREAM_RETRY, retry_spread=RETRY_SPREAD,
        on_close=partial(stream_closed, room.id, nick))


@require_GET
def lobby_events(request: HttpRequest) -> HttpResponse:
    """``text/event-stream`` of the room list: a ``rooms`` snapshot first, then one per
    change (a message anywhere carries its id; presence and new rooms do not)."""
    after = stream_cursor(request)
    if isinstance(after, JsonResponse):
        return after
    latest = queries.latest_message_id()
    viewer = request.user.pk if request.user.is_authenticated else None
    return event_stream([LOBBY], after=max(after, latest), render=LobbyFrames(viewer),
                        first=[lobby_snapshot(latest, viewer)], lifetime=stream_lifetime(),
                        retry=STREAM_RETRY, retry_spread=RETRY_SPREAD)

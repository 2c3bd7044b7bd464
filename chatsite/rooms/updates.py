"""The answers of the updates long-polls, for the room pages and the lobby.

Messages always come from the database (the source of truth); comet events only say
*when* to look.  Renderers are module-level and hashable so that every waiter woken by
one publish shares a single render call (one query for thousands of pages).
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max

from chatsite.rooms import presence
from chatsite.rooms.conf import MAX_BATCH
from chatsite.rooms.models import Message, Room
from comet_server import Event


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def messages_after(room_id: int, after: int, limit: int = MAX_BATCH) -> list[dict[str, Any]]:
    """Up to ``limit`` messages of a room with an id above ``after``, oldest first."""
    rows = Message.objects.filter(room_id=room_id, id__gt=after).order_by("id")[:limit]
    return [m.as_json() for m in rows]


def room_answer(room_id: int, after: int, messages: list[dict[str, Any]],
                typing: Iterable[str] = ()) -> bytes:
    """``{"messages", "cursor", "presence", "typing"}``; the cursor never goes backwards."""
    cursor = max([after] + [m["id"] for m in messages])
    return _dumps({
        "messages": messages,
        "cursor": cursor,
        "presence": presence.present_nicks(room_id),
        "typing": sorted(set(typing)),
    })


def _typing_nicks(events: list[Event]) -> set[str]:
    nicks = set()
    for event in events:
        payload = event.payload
        if event.cursor is None and isinstance(payload, dict) and payload.get("type") == "typing":
            nicks.add(str(payload.get("nick")))
    return nicks


@dataclass(frozen=True, slots=True)
class RoomUpdates:
    """The renderer of one room's long-polls.

    A value object rather than a function because the timeout answer (no events)
    must still know its room for the presence list; equal per room, so the comet
    hub's memo still shares one render among all of a room's waiters.
    """

    room_id: int

    def __call__(self, events: list[Event], after: int) -> bytes:
        # Also read the database on a signal or a timeout: a message whose publish
        # was lost (crash between commit and publish) still reaches the page.
        return room_answer(self.room_id, after, messages_after(self.room_id, after),
                           _typing_nicks(events))


def lobby_rooms() -> list[dict[str, Any]]:
    """Every room with its message count and how many people are present."""
    present = presence.present_counts()
    rooms = Room.objects.annotate(message_count=Count("messages")).order_by("title", "slug")
    return [{
        "slug": room.slug,
        "title": room.title,
        "description": room.description,
        "url": room.get_absolute_url(),
        "count": room.message_count,
        "present": present.get(room.id, 0),
    } for room in rooms]


def latest_message_id() -> int:
    """The highest message id on the site (0 when there is none): the lobby's cursor."""
    return Message.objects.aggregate(top=Max("id"))["top"] or 0


def lobby_answer(after: int) -> bytes:
    """``{"rooms": [...], "cursor": <latest message id>}``."""
    return _dumps({"rooms": lobby_rooms(), "cursor": max(after, latest_message_id())})


def render_lobby(events: list[Event], after: int) -> bytes:
    """Renderer of the lobby long-poll: a fresh snapshot, whatever woke it."""
    return lobby_answer(after)

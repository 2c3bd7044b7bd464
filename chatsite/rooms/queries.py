"""The chat's reads of messages and rooms, shared by the views, the long-poll
renderers (``updates.py``) and the stream frames (``stream_frames.py``)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max

from chatsite.rooms import access, presence
from chatsite.rooms.conf import MAX_BATCH
from chatsite.rooms.models import Message, Room


def messages_after(room_id: int, after: int, limit: int = MAX_BATCH) -> list[dict[str, Any]]:
    """Up to ``limit`` messages of a room with an id above ``after``, oldest first."""
    rows = Message.objects.filter(room_id=room_id, id__gt=after).order_by("id")[:limit]
    return [m.as_json() for m in rows]


def newest_message_id(room_id: int) -> int:
    """The highest message id of a room (0 when it has none)."""
    return Message.objects.filter(room_id=room_id).aggregate(top=Max("id"))["top"] or 0


def messages_between(room_id: int, low: int, high: int, limit: int) -> list[dict[str, Any]]:
    """Messages of a room with ``low < id <= high``, oldest first, at most ``limit``."""
    rows = (Message.objects.filter(room_id=room_id, id__gt=low, id__lte=high)
            .order_by("id")[:limit])
    return [m.as_json() for m in rows]


def latest_messages(room_id: int, count: int) -> list[dict[str, Any]]:
    """The last ``count`` messages of a room, oldest first."""
    rows = list(Message.objects.filter(room_id=room_id).order_by("-id")[:count])
    return [m.as_json() for m in reversed(rows)]


def lobby_rows() -> list[dict[str, Any]]:
    """Every room (private ones too) with its counts; ``"_private"`` holds a private
    room's id and ``"_users"`` who may see it (both stripped before sending)."""
    present = presence.present_counts()
    rooms = list(Room.objects.annotate(message_count=Count("messages"),
                                       last_activity=Max("messages__created"))
                 .order_by("title", "slug"))
    allowed = access.allowed_users_by_room([room for room in rooms if room.private])
    rows = []
    for room in rooms:
        row: dict[str, Any] = {
            "slug": room.slug,
            "title": room.title,
            "description": room.description,
            "url": room.get_absolute_url(),
            "count": room.message_count,
            "present": present.get(room.id, 0),
            "private": room.private,
            "last": room.last_activity.isoformat() if room.last_activity else None,
        }
        if room.private:
            row["_private"] = room.id
            row["_users"] = allowed[room.id]
        rows.append(row)
    return rows


def visible_rows(rows: list[dict[str, Any]], viewer: int | None) -> list[dict[str, Any]]:
    """The rows ``viewer`` may see, without the internal keys."""
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows
            if "_private" not in row or (viewer is not None and viewer in row["_users"])]


def lobby_rooms(viewer: int | None = None) -> list[dict[str, Any]]:
    """The rooms ``viewer`` (a user id, or None) may see, with their message count, how
    many people are present, whether it is private and when its last message came."""
    return visible_rows(lobby_rows(), viewer)


def latest_message_id() -> int:
    """The highest message id on the site (0 when there is none): the lobby's cursor,
    and the highest cursor any updates long-poll accepts."""
    return Message.objects.aggregate(top=Max("id"))["top"] or 0

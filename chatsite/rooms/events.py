"""The names of the chat's events, each written once: the channels it publishes on,
the ``type`` of every payload it publishes, and the ``event:`` names of the frames on
its event streams.  The page's script gets them from ``page_attrs()`` (a ``data-*``
attribute), so it holds no literal of its own."""

from __future__ import annotations

import json
from enum import StrEnum

LOBBY = "lobby"  # room list: message counts (cursor = message id) and presence signals


def room_channel(slug: str) -> str:
    """The channel of one room: messages (cursor = message id), presence and typing signals."""
    return f"room:{slug}"


class Signal(StrEnum):
    """The ``type`` of a payload on a chat channel (a ``str``: it is the JSON value)."""

    MESSAGE = "message"  # a message was stored; cursor = its id (room and lobby)
    PRESENCE = "presence"  # someone came or left (room and lobby)
    TYPING = "typing"  # ``{"nick"}`` is typing (room; no cursor, never stored)
    ROOM = "room"  # a room was created, or its members changed (lobby)
    MEMBERSHIP = "membership"  # a private room's members changed (room)
    DELETED = "deleted"  # moderation: ``{"id": change id, "message": message id}`` (room)
    EDITED = "edited"
    STORED = "stored"  # never published: a stored message a stream view replays


# Moderation signals; pages read the changes from the database (``MessageChange.kind``).
CHANGE_TYPES = frozenset({Signal.DELETED, Signal.EDITED})


class Frame(StrEnum):
    """The ``event:`` name of a frame on the chat's event streams (see README)."""

    READY = "ready"  # first, at once: presence and where the stream stands
    RESYNC = "resync"  # too much was missed: reload what the page shows
    MESSAGES = "messages"
    CHANGES = "changes"
    PRESENCE = "presence"
    TYPING = "typing"
    MEMBERSHIP = "membership"
    ROOMS = "rooms"  # the lobby's room list


class ClientMessage(StrEnum):
    """The ``type`` of a message a page sends over a room's WebSocket."""

    POST = "post"  # {"type": "post", "text": ...}: a message, as an HTTP post
    TYPING = "typing"  # {"type": "typing"}: as POST /rooms/<slug>/typing


def page_attrs() -> dict[str, str]:
    """The names for the page's script, as ``data-*`` attributes (``data-`` + key):
    ``data-events`` is ``{"frames": {"ready": "ready", ...}, "changes": {"deleted":
    "deleted", "edited": "edited"}, "client": {"post": "post", "typing": "typing"}}``
    as JSON."""
    names = {"frames": {frame.name.lower(): frame.value for frame in Frame},
             "changes": {kind.name.lower(): kind.value for kind in sorted(CHANGE_TYPES)},
             "client": {kind.name.lower(): kind.value for kind in ClientMessage}}
    return {"events": json.dumps(names, separators=(",", ":"))}

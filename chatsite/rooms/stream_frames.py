"""What the chat's published events become on the event streams (``event_stream`` renders).

A render runs once per event for every stream of a process, so it may read the
database once (presence, the lobby snapshot) but never per stream.

Room messages need more than their payload.  A stream's ``id:`` is the browser's
resume point (``Last-Event-ID``): once a frame with id N went out, the browser will
never ask for a message below N again.  But the hub skips an event whose cursor is
below what a stream already has, and an event can arrive late or not at all: two
processes post 10 and 11 in that order (the room lock orders the commits) but 11's
publish reaches Redis first; or 10's publish was lost while Redis was away.  So a
message frame carries every message of the room past the last one this process
framed, read from the database (where, thanks to the room lock, every message below
a committed one is committed too): frame 11 then holds 10 and 11, and a late 10 is
skipped by streams that are past it.  That is one query per event, whatever the
number of streams, and a frame is made once per event (kept for re-deliveries).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from chatsite.rooms import presence, queries
from chatsite.rooms.conf import MAX_BATCH
from chatsite.rooms.events import CHANGE_TYPES, Frame, Signal
from chatsite.rooms.models import MessageChange
from comet_server import Event, ServerSentEvent

RESYNC_DATA = "{}"  # the data of a resync event: the client reloads what it shows
FRAMES_KEPT = 2048  # message frames remembered for re-deliveries, in this process


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Ledger:
    """Per process and room with open streams: the highest message id framed for them.

    Every frame a process sends for a room covers ``(last, id]``, so together its
    frames hold every committed message past the point its streams started from.  A
    room's entry lives while a stream of the room is open here; the first stream sets
    it to the newest id it replayed (nothing older can be missing from any stream).
    """

    def __init__(self, kept: int = FRAMES_KEPT) -> None:
        self._lock = threading.Lock()
        self._rooms: dict[int, list[int]] = {}  # room id -> [open streams, last id framed]
        self._frames: OrderedDict[tuple[int, int], ServerSentEvent] = OrderedDict()
        self._kept = kept

    def opened(self, room_id: int, newest: int) -> None:
        """A stream of the room opened, having replayed everything up to ``newest``."""
        with self._lock:
            entry = self._rooms.get(room_id)
            if entry is None:
                self._rooms[room_id] = [1, newest]
            else:
                entry[0] += 1

    def closed(self, room_id: int) -> None:
        with self._lock:
            entry = self._rooms.get(room_id)
            if entry is not None:
                entry[0] -= 1
                if entry[0] <= 0:
                    del self._rooms[room_id]

    def message_frame(self, room_id: int, cursor: int,
                      message: dict[str, Any] | None) -> ServerSentEvent:
        """The frame of the message event ``cursor`` (made once, then remembered)."""
        key = (room_id, cursor)
        with self._lock:
            frame = self._frames.get(key)
            if frame is not None:
                return frame
            entry = self._rooms.get(room_id)
            if entry is None or cursor <= entry[1]:
                # Late (streams past it skip it) or no stream here: its own message.
                frame = _messages_frame([message] if message else [])
            else:
                found = queries.messages_between(room_id, entry[1], cursor, MAX_BATCH + 1)
                entry[1] = cursor
                frame = (ServerSentEvent(RESYNC_DATA, event=Frame.RESYNC) if len(found) > MAX_BATCH
                         else _messages_frame(found))
            self._frames[key] = frame
            if len(self._frames) > self._kept:
                self._frames.popitem(last=False)
            return frame

    def open_rooms(self) -> int:
        with self._lock:
            return len(self._rooms)


ledger = Ledger()


def _messages_frame(messages: list[dict[str, Any]]) -> ServerSentEvent:
    return ServerSentEvent(dumps({"messages": messages}), event=Frame.MESSAGES)


def stored_event(channel: str, message: dict[str, Any]) -> Event:
    """A message read from the database, to replay on a stream (framed as it is)."""
    return Event(channel, {"type": Signal.STORED, "message": message}, message["id"])


def presence_frame(room_id: int) -> ServerSentEvent:
    return ServerSentEvent(dumps({"presence": presence.present_nicks(room_id)}),
                           event=Frame.PRESENCE)


def changes_frame(changes: list[dict[str, Any]]) -> ServerSentEvent:
    """``changes``: moderation changes, as the long-poll's ``"changes"`` holds them."""
    return ServerSentEvent(dumps({"changes": changes}), event=Frame.CHANGES)


def _change_frame(room_id: int, change_id: Any) -> ServerSentEvent | None:
    """The frame of a published change signal, read back (one query per event): the
    change as it is stored, its message as it is now (a tombstone once deleted)."""
    if not isinstance(change_id, int):
        return None
    change = (MessageChange.objects.filter(room_id=room_id, id=change_id)
              .select_related("message").first())
    return None if change is None else changes_frame([change.as_json()])


@dataclass(frozen=True, slots=True)
class RoomFrames:
    """The render of one room's streams (equal per room, so a batch is framed once)."""

    room_id: int

    def __call__(self, event: Event) -> ServerSentEvent | None:
        payload = event.payload
        kind = payload.get("type") if isinstance(payload, dict) else None
        if event.cursor is not None:
            message = payload.get("message") if isinstance(payload, dict) else None
            if kind == Signal.STORED:
                return _messages_frame([message] if message else [])
            return ledger.message_frame(self.room_id, event.cursor, message)
        if kind == Signal.PRESENCE:
            return presence_frame(self.room_id)
        if kind == Signal.TYPING:
            return ServerSentEvent(dumps({"nick": str(payload.get("nick"))}), event=Frame.TYPING)
        if kind in CHANGE_TYPES:
            return _change_frame(self.room_id, payload.get("id"))
        if kind == Signal.MEMBERSHIP:
            # Who may see this private room changed; the render is shared by every
            # stream, so it cannot tell whom: each page connects again and the view
            # checks its access (a removed member is refused).
            return ServerSentEvent("{}", event=Frame.MEMBERSHIP)
        return None  # a signal this page does not know: nothing to send


def lobby_snapshot(cursor: int = 0, viewer: int | None = None) -> ServerSentEvent:
    """``rooms``: the room list ``viewer`` may see, as the lobby long-poll answers it."""
    # The cursor is read before the counts: a message committed in between is counted.
    latest = queries.latest_message_id()
    return ServerSentEvent(dumps({"rooms": queries.lobby_rooms(viewer),
                                  "cursor": max(latest, cursor)}), event=Frame.ROOMS)


_LOBBY_SIGNALS = frozenset({Signal.MESSAGE, Signal.PRESENCE, Signal.ROOM})


@dataclass(frozen=True, slots=True)
class LobbyFrames:
    """The render of the lobby's streams: a fresh snapshot per event (one query set per
    event, shared by every stream of the same viewer: every guest shares one, a user
    who may see private rooms has their own); a message's frame carries its id."""

    viewer: int | None = None

    def __call__(self, event: Event) -> ServerSentEvent | None:
        payload = event.payload
        if not isinstance(payload, dict) or payload.get("type") not in _LOBBY_SIGNALS:
            return None
        return lobby_snapshot(event.cursor or 0, self.viewer)

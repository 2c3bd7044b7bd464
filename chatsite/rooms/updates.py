"""The answers of the updates long-polls (their renderers), for the room pages and
the lobby; what they read is in ``queries.py``.

Messages always come from the database (the source of truth); comet events only say
*when* to look.  The renderers are staged (see ``comet_server.responses``): what does
not depend on a page's cursor is read once per wake-up (``prepare``), and each distinct
cursor costs only what it must (``render_prepared``).  One wake-up of thousands of
pages with thousands of different cursors is therefore a few queries, not a few per
page: a room reads its newest message id and its presence once, its latest messages
at most once, and only a page further behind than those reads its own messages.
"""

import json
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpResponse

from chatsite.rooms import access, moderation, presence, queries
from chatsite.rooms.conf import MAX_BATCH
from chatsite.rooms.events import CHANGE_TYPES, Signal
from comet_server import Event

# Latest messages of a room a wake-up reads (once, when some page is behind): every
# page fewer than this many messages behind is answered from them without a query.
TAIL = 50


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _room_tail(presence_nicks: list[str], typing: Iterable[str]) -> bytes:
    """The end of a room answer, from ``"presence"`` on (shared by every cursor)."""
    return _dumps({"presence": presence_nicks, "typing": sorted(set(typing))})[1:]


def _room_body(messages: list[dict[str, Any]], after: int, tail: bytes,
               changes: list[dict[str, Any]] | None = None) -> bytes:
    head: dict[str, Any] = {"messages": messages,
                            "cursor": max([after] + [m["id"] for m in messages])}
    if changes:
        head["changes"] = changes
    return _dumps(head)[:-1] + b"," + tail


def room_answer(room_id: int, after: int, messages: list[dict[str, Any]],
                typing: Iterable[str] = (), changes: list[dict[str, Any]] | None = None) -> bytes:
    """``{"messages", "cursor", "presence", "typing"}`` and, when there are any,
    ``"changes"`` (moderation, ``moderation.changes_after``); the cursor never goes
    backwards."""
    return _room_body(messages, after, _room_tail(presence.present_nicks(room_id), typing),
                      changes)


# The answer a member removed from a private room gets instead of updates.
REVOKED = _dumps({"error": "You are no longer a member of this room.", "revoked": True})


def _has_change(events: list[Event]) -> bool:
    return any(isinstance(e.payload, dict) and e.payload.get("type") in CHANGE_TYPES
               for e in events)


def _typing_nicks(events: list[Event]) -> set[str]:
    nicks = set()
    for event in events:
        payload = event.payload
        if (event.cursor is None and isinstance(payload, dict)
                and payload.get("type") == Signal.TYPING):
            nicks.add(str(payload.get("nick")))
    return nicks


@dataclass(slots=True)
class RoomSnapshot:
    """What one wake-up of a room's pages knows, whatever their cursors."""

    room_id: int
    newest: int  # the room's newest message id when the wake-up began
    tail: bytes  # the answer from "presence" on
    allowed: frozenset[int] | None = None  # a private room's users (None: public)
    changes: list[dict[str, Any]] = field(default_factory=list)  # recent, if events had some
    _latest: list[dict[str, Any]] | None = field(default=None, repr=False)
    _latest_ids: list[int] = field(default_factory=list, repr=False)
    _whole_room: bool = field(default=False, repr=False)

    def latest(self) -> list[dict[str, Any]]:
        """The room's last ``TAIL`` messages, oldest first (read on first use)."""
        if self._latest is None:
            self._latest = queries.latest_messages(self.room_id, TAIL)
            self._latest_ids = [m["id"] for m in self._latest]
            self._whole_room = len(self._latest) < TAIL
        return self._latest

    def span(self, after: int) -> tuple[int, int] | None:
        """Where the messages past ``after`` lie in ``latest()``, or ``None`` when some
        of them may be older than it (the page is far behind: read them)."""
        latest = self.latest()
        if not self._whole_room and (not latest or after < latest[0]["id"]):
            return None
        start = bisect_right(self._latest_ids, after)
        return start, min(len(latest), start + MAX_BATCH)


@dataclass(frozen=True, slots=True)
class RoomUpdates:
    """The renderer of one room's long-polls (a staged renderer).

    A value object rather than a function because the answer must know its room even
    without events (timeout: presence); equal per room, so all of a room's waiters
    woken together share its ``prepare`` and equal answers share one render.

    ``viewer`` (the user polling a private room) and ``changes_after`` (the newest
    moderation change the page has) differ per waiter but are left out of equality on
    purpose: the waiters of a room still share one ``prepare``, and ``answer_key``
    (called on each waiter's own renderer) folds them into the key of its answer, so
    waiters share a body only when it is the same for them.  A private room's
    ``prepare`` reads its allowed users once; a removed member's key is ``"revoked"``.

    Also read the database on a signal or a timeout: a message whose publish was lost
    (crash between commit and publish) still reaches the page.
    """

    room_id: int
    private: bool = False
    viewer: int | None = field(default=None, compare=False)
    changes_after: int = field(default=0, compare=False)

    def prepare(self, events: list[Event]) -> RoomSnapshot:
        return RoomSnapshot(
            self.room_id, queries.newest_message_id(self.room_id),
            _room_tail(presence.present_nicks(self.room_id), _typing_nicks(events)),
            allowed=access.allowed_user_ids(self.room_id) if self.private else None,
            changes=moderation.recent_changes(self.room_id) if _has_change(events) else [])

    def _changes(self, prepared: RoomSnapshot) -> list[dict[str, Any]]:
        recent = prepared.changes
        if not recent or recent[-1]["id"] <= self.changes_after:
            return []
        if len(recent) >= moderation.RECENT and recent[0]["id"] > self.changes_after:
            # the page may miss changes older than those read: read its own
            return moderation.changes_after(self.room_id, self.changes_after)
        return [c for c in recent if c["id"] > self.changes_after]

    def answer_key(self, prepared: RoomSnapshot, after: int) -> Any:
        if prepared.allowed is not None and self.viewer not in prepared.allowed:
            return "revoked"
        changes = self._changes(prepared)
        changes_key = changes[0]["id"] if changes else 0
        # Pages already past the newest message get "nothing new, cursor = after";
        # pages behind by the same recent messages get the same answer.
        if after < prepared.newest:
            span = prepared.span(after)
            if span is not None and span[0] < span[1]:
                return ("span",) + span + (changes_key,)
        return (after, changes_key)

    def render_prepared(self, prepared: RoomSnapshot, events: list[Event],
                        after: int) -> bytes | HttpResponse:
        if prepared.allowed is not None and self.viewer not in prepared.allowed:
            return HttpResponse(REVOKED, status=403, content_type="application/json")
        if after >= prepared.newest:
            messages: list[dict[str, Any]] = []  # no query: nothing newer when we looked
        else:
            span = prepared.span(after)
            if span is None:
                messages = queries.messages_after(self.room_id, after)
            else:
                messages = prepared.latest()[span[0]:span[1]]
        return _room_body(messages, after, prepared.tail, self._changes(prepared))

    def __call__(self, events: list[Event], after: int) -> bytes | HttpResponse:
        return self.render_prepared(self.prepare(events), events, after)


def _lobby_snapshot() -> tuple[int, list[dict[str, Any]]]:
    # The cursor is read before the counts: a message committed in between is then
    # counted, and the cursor below it makes the page ask again, never miss it.
    latest = queries.latest_message_id()
    return latest, queries.lobby_rows()


def _lobby_body(latest: int, rooms: list[dict[str, Any]], after: int,
                viewer: int | None) -> bytes:
    return (b'{"rooms":' + _dumps(queries.visible_rows(rooms, viewer))
            + b',"cursor":%d}' % max(after, latest))


def lobby_answer(after: int, viewer: int | None = None) -> bytes:
    """``{"rooms": [...], "cursor": <latest message id>}`` as ``viewer`` sees it."""
    return _lobby_body(*_lobby_snapshot(), after, viewer)


@dataclass(frozen=True, slots=True)
class LobbyUpdates:
    """The renderer of the lobby long-poll (a staged renderer): one snapshot per
    wake-up, whatever woke it.  The answer depends on ``after`` only through
    ``max(after, latest)`` and on the viewer only through the private rooms they may
    see, so every visitor without private rooms shares one render.  ``viewer`` is
    left out of equality (see ``RoomUpdates``): all lobby waiters share ``prepare``."""

    viewer: int | None = field(default=None, compare=False)

    def prepare(self, events: list[Event]) -> tuple[int, list[dict[str, Any]]]:
        return _lobby_snapshot()

    def answer_key(self, prepared: tuple[int, list[dict[str, Any]]], after: int) -> Any:
        private = tuple(row["_private"] for row in prepared[1]
                        if "_private" in row and self.viewer in row["_users"])
        return max(after, prepared[0]), private

    def render_prepared(self, prepared: tuple[int, list[dict[str, Any]]],
                        events: list[Event], after: int) -> bytes:
        return _lobby_body(prepared[0], prepared[1], after, self.viewer)

    def __call__(self, events: list[Event], after: int) -> bytes:
        return self.render_prepared(self.prepare(events), events, after)


render_lobby = LobbyUpdates()

"""What the hub carries: a published ``Event``, and the ``Delivery`` of a batch of them
to a waiter or a follower.  Both sides of the hub (the matching and the waits) speak
these; this module knows nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class Event:
    """One published event.  ``cursor`` orders events of a channel; ``None`` marks a
    signal (presence, typing...) that wakes current waiters but is not replayed.
    ``coalesce`` marks a signal that may wait for the hub's signal window before it
    wakes parked long-polls (see ``Hub.set_signal_window``); event streams get it at
    once all the same."""

    __slots__ = ("channel", "cursor", "payload", "coalesce", "_json")

    def __init__(self, channel: str, payload: Any, cursor: int | None = None,
                 coalesce: bool = False) -> None:
        self.channel = channel
        self.payload = payload
        self.cursor = cursor
        self.coalesce = coalesce
        self._json: bytes | None = None

    def to_json(self) -> bytes:
        """The event as JSON, serialised once however many waiters it reaches."""
        if self._json is None:
            obj = {"channel": self.channel, "cursor": self.cursor, "payload": self.payload}
            if self.coalesce:
                obj["coalesce"] = True
            self._json = json.dumps(obj, separators=(",", ":")).encode()
        return self._json

    @classmethod
    def from_json(cls, data: bytes | str) -> Event:
        obj = json.loads(data)
        event = cls(obj["channel"], obj.get("payload"), obj.get("cursor"),
                    bool(obj.get("coalesce")))
        event._json = data if isinstance(data, bytes) else data.encode()
        return event

    def __repr__(self) -> str:
        return f"Event({self.channel!r}, cursor={self.cursor!r})"


@dataclass(slots=True)
class Delivery:
    """Events handed to a waiter.

    ``memo`` is shared by every waiter woken by the same dispatch, so a renderer can
    serialise a batch once for thousands of waiters instead of once per waiter.
    """

    events: list[Event]
    memo: dict[Any, Any] = field(default_factory=dict)


def resume_after(replayed: list[Event], after: int | None) -> int | None:
    """Where a stream stands once ``replayed`` (events the view read from its store) are
    sent: the newest of their cursors and ``after``."""
    cursors = [e.cursor for e in replayed if e.cursor is not None]
    return max(cursors + ([after] if after is not None else [])) if cursors else after

"""Which events of a dispatch each waiter or follower wants: the one matcher of the hub.

Members behind every cursored event of a channel (the usual case: clients are caught
up) want all of them and share one events list, so whatever is made of it (a render, a
stream frame) is made once; the others are grouped by their cursor, one list per cursor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from comet_server.push.events import Event


class Cursored(Protocol):
    """A waiter or a follower: what it has seen of its channels (``None``: nothing)."""

    after: int | None


M = TypeVar("M", bound=Cursored)


def wanted(events: Iterable[Event], after: int | None) -> list[Event]:
    """The events past ``after``, signals (no cursor) included."""
    if after is None:
        return list(events)
    return [e for e in events if e.cursor is None or e.cursor > after]


def match(members: Iterable[M], events: list[Event]) -> list[tuple[list[Event], list[M]]]:
    """``members`` grouped by what they want of ``events`` (one channel's, in arrival
    order): each group with its events list, shared by the group; a group that wants
    nothing is left out."""
    cursors = [e.cursor for e in events if e.cursor is not None]
    lowest = min(cursors) if cursors else None
    everyone: list[M] = []
    behind: dict[int, list[M]] = {}
    for member in members:
        after = member.after
        if after is None or lowest is None or after < lowest:
            everyone.append(member)
        else:
            group = behind.get(after)
            if group is None:
                group = behind[after] = []
            group.append(member)
    groups = [(events, everyone)] if everyone else []
    for after, group in behind.items():
        some = wanted(events, after)
        if some:
            groups.append((some, group))
    return groups


def top_cursor(events: Iterable[Event]) -> int | None:
    """The highest cursor of ``events`` (``None``: signals only)."""
    return max((e.cursor for e in events if e.cursor is not None), default=None)

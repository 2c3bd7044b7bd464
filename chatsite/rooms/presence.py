"""Who is in a room: nicks seen polling recently, or holding an event stream.

Presence is refreshed by the updates long-poll itself, so there is no heartbeat
endpoint; a row is written at most every ``TOUCH_EVERY`` seconds per nick to keep
thousands of polling pages from turning into thousands of writes.  A change is
signalled (``signal``) on the room's channel and the lobby's.

Streams (``Leases``): a stream page polls nothing for minutes, so opening a stream
takes a *lease*: its presence row's ``last_seen`` is set to the end of the stream's
lifetime (in the future), so it stays "seen within ``CHAT_PRESENCE_SECONDS``" the
whole time the stream can be open, and ``touch`` from other requests writes nothing
meanwhile.

When the stream ends (lifetime, server drain, the client going away) the lease is
cut back to *now*: the nick lapses after the normal presence window unless the page
reconnects first, which it does within seconds.  So the reconnect every few minutes
causes no leave/join flapping, a page that vanished (network gone, crash) leaves
within the presence window, and a page closed normally leaves at once through its
``/leave`` beacon.  A lease is only cut back when no later lease replaced it (another
tab of the same nick, here or on another process); streams of one nick and room in
one process are counted, and the last one to close cuts the latest lease.

Known limit: two tabs of one nick on *different* processes share the row; when the
one with the later lease closes first, the other's presence lapses after the window
until it reconnects.  A killed process does not cut its leases: they run out at
their end (lifetime + presence window).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from chatsite.rooms.conf import presence_seconds
from chatsite.rooms.events import LOBBY, Signal, room_channel
from chatsite.rooms.models import Presence, Room
from chatsite.rooms.validation import name_key
from comet_server import publish

TOUCH_EVERY = 10.0  # seconds; must stay well below presence_seconds() - poll timeout


def _cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(seconds=presence_seconds())


def touch(room: Room, nick: str) -> bool:
    """Mark ``nick`` as present in ``room``; True when it just joined (signal it)."""
    now = timezone.now()
    row = Presence.objects.filter(room=room, nick=nick).only("last_seen").first()
    if row is not None and row.last_seen >= now - timedelta(seconds=TOUCH_EVERY):
        return False
    joined = row is None or row.last_seen < _cutoff(now)
    Presence.objects.update_or_create(room=room, nick=nick, defaults={"last_seen": now})
    return joined


def leave(room: Room, nick: str) -> bool:
    """Forget ``nick`` in ``room``; True when it was there."""
    deleted, _ = Presence.objects.filter(room=room, nick=nick).delete()
    return bool(deleted)


def present_nicks(room_id: int) -> list[str]:
    """The nicks present in a room, sorted as people read them ("bob" between "Ann"
    and "Cat"; case-folded, whatever the database's collation)."""
    nicks = Presence.objects.filter(room_id=room_id, last_seen__gte=_cutoff()) \
        .values_list("nick", flat=True)
    return sorted(nicks, key=lambda nick: (name_key(nick), nick))


def present_counts() -> dict[int, int]:
    """How many nicks are present, per room id (rooms with nobody are absent)."""
    rows = (Presence.objects.filter(last_seen__gte=_cutoff())
            .values("room_id").annotate(n=Count("id")).values_list("room_id", "n"))
    return dict(rows)


def signal(room: Room) -> None:
    """Wake the room's and the lobby's pages: the list of people changed.  A signal
    that coalesces: long-polls get a window's presence changes together."""
    publish(room_channel(room.slug), {"type": Signal.PRESENCE}, coalesce=True)
    publish(LOBBY, {"type": Signal.PRESENCE, "room": room.slug}, coalesce=True)


class Leases:
    """Open streams per (room id, nick) in this process, and the latest lease taken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[int, str], list] = {}  # key -> [open streams, latest lease]

    def take(self, room: Room, nick: str, seconds: float) -> datetime:
        """Hold ``nick`` present in ``room`` for ``seconds`` (a stream's lifetime);
        signal the room and the lobby when the nick was not present."""
        now = timezone.now()
        until = now + timedelta(seconds=seconds)
        row = Presence.objects.filter(room=room, nick=nick).only("last_seen").first()
        joined = row is None or row.last_seen < now - timedelta(seconds=presence_seconds())
        if row is None or row.last_seen < until:
            Presence.objects.update_or_create(room=room, nick=nick,
                                              defaults={"last_seen": until})
        key = (room.pk, nick)
        with self._lock:
            streams, latest = self._held.get(key, (0, until))
            self._held[key] = [streams + 1, max(latest, until)]
        if joined:
            signal(room)
        return until

    def release(self, room_id: int, nick: str) -> None:
        """A stream ended: when it was the last of this nick here, cut the lease to now."""
        key = (room_id, nick)
        with self._lock:
            entry = self._held.get(key)
            if entry is None:
                return
            entry[0] -= 1
            if entry[0] > 0:
                return
            del self._held[key]
            latest = entry[1]
        Presence.objects.filter(room_id=room_id, nick=nick,
                                last_seen__lte=latest).update(last_seen=timezone.now())

    def held(self) -> int:
        with self._lock:
            return len(self._held)


leases = Leases()

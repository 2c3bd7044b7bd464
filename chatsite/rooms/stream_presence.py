"""Presence kept by an open event stream, with no write per message or heartbeat.

A long-poll page is present because it polls (``presence.touch`` every poll).  A
stream page polls nothing for minutes, so opening a stream takes a *lease*: its
presence row's ``last_seen`` is set to the end of the stream's lifetime (in the
future), so it stays "seen within ``CHAT_PRESENCE_SECONDS``" the whole time the
stream can be open, and ``touch`` from other requests writes nothing meanwhile.

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

from django.utils import timezone

from chatsite.rooms import services
from chatsite.rooms.conf import presence_seconds
from chatsite.rooms.models import Presence, Room


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
            entry = self._held.get(key)
            if entry is None:
                self._held[key] = [1, until]
            else:
                entry[0] += 1
                entry[1] = max(entry[1], until)
        if joined:
            services.signal_presence(room)
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

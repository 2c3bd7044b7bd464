"""Who is in a room: nicks seen polling recently.

Presence is refreshed by the updates long-poll itself, so there is no heartbeat
endpoint; a row is written at most every ``TOUCH_EVERY`` seconds per nick to keep
thousands of polling pages from turning into thousands of writes.
"""

from datetime import datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from chatsite.rooms.conf import presence_seconds
from chatsite.rooms.models import Presence, Room

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
    """The nicks present in a room, sorted as people read ("anna" before "Eve")."""
    nicks = Presence.objects.filter(room_id=room_id, last_seen__gte=_cutoff())
    return sorted(nicks.values_list("nick", flat=True), key=lambda nick: (nick.casefold(), nick))


def present_counts() -> dict[int, int]:
    """How many nicks are present, per room id (rooms with nobody are absent)."""
    rows = (Presence.objects.filter(last_seen__gte=_cutoff())
            .values("room_id").annotate(n=Count("id")).values_list("room_id", "n"))
    return dict(rows)

"""Members of private rooms: the owner adds and removes them.

A change is published after commit on the room's channel (``{"type": "membership"}``,
a signal): the room's parked long-polls wake, and a removed member's answer is
``updates.REVOKED``.  The lobby is signalled too, so lobby pages show or hide the room.
"""

from functools import partial

from django.contrib.auth import get_user_model
from django.db import transaction

from chatsite.rooms.events import LOBBY, Signal, room_channel
from chatsite.rooms.models import Room
from comet_server import publish


class NoSuchUser(ValueError):
    """No account has that username."""


def _announce(room: Room) -> None:
    transaction.on_commit(partial(publish, room_channel(room.slug), {"type": Signal.MEMBERSHIP}),
                          robust=True)
    transaction.on_commit(partial(publish, LOBBY, {"type": Signal.ROOM, "room": room.slug}),
                          robust=True)


def add_member(room: Room, username: str) -> None:
    """Let the account ``username`` into the room (NoSuchUser when there is none)."""
    users = get_user_model().objects
    user = users.filter(**{users.model.USERNAME_FIELD: (username or "").strip()}).first()
    if user is None:
        raise NoSuchUser(f"No account is called “{username.strip()}”.")
    with transaction.atomic():
        room.members.add(user)
        _announce(room)


def remove_member(room: Room, user_id: int) -> bool:
    """Take a member out of the room; their open pages stop receiving at once."""
    with transaction.atomic():
        removed = room.members.through.objects.filter(room_id=room.pk, user_id=user_id).delete()[0]
        if removed:
            _announce(room)
    return bool(removed)

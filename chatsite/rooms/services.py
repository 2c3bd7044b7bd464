"""Actions with side effects on the comet channels, callable from views, commands or tasks.

The rule for messages: store first, publish after commit.  The room row is locked
while the message is inserted, so within a room ids are committed in id order
(PostgreSQL, several processes); a poll that reads the database after a publish
therefore never skips a lower id that commits later.
"""

from functools import partial
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from chatsite.rooms import presence
from chatsite.rooms.channels import LOBBY, room_channel
from chatsite.rooms.models import Message, Room
from chatsite.rooms.validation import clean_nick, clean_text
from comet_server import publish


def post_message(room: Room, author: str, text: str,
                 user: AbstractBaseUser | None = None) -> Message:
    """Store a message and publish it once committed.  Raises ValueError on bad input."""
    author = clean_nick(author)
    text = clean_text(text)
    with transaction.atomic():
        Room.objects.select_for_update().only("id").get(pk=room.pk)
        message = Message.objects.create(room=room, author=author, text=text, user=user)
        transaction.on_commit(
            partial(_announce_message, room.slug, message.as_json()), robust=True)
    return message


def _announce_message(slug: str, data: dict[str, Any]) -> None:
    publish(room_channel(slug), {"type": "message", "message": data}, cursor=data["id"])
    publish(LOBBY, {"type": "message", "room": slug}, cursor=data["id"])


def signal_presence(room: Room) -> None:
    """Wake the room's and the lobby's pollers: the list of people changed."""
    publish(room_channel(room.slug), {"type": "presence"})
    publish(LOBBY, {"type": "presence", "room": room.slug})


def join(room: Room, nick: str) -> None:
    """Refresh ``nick``'s presence (called on each poll); signal when it is new."""
    if presence.touch(room, nick):
        signal_presence(room)


def leave(room: Room, nick: str) -> None:
    """``nick`` left the page; signal when it was present."""
    if presence.leave(room, nick):
        signal_presence(room)


def signal_typing(room: Room, nick: str) -> None:
    """Tell the room ``nick`` is typing (a signal: not replayed, not stored)."""
    publish(room_channel(room.slug), {"type": "typing", "nick": nick})


def announce_room(room: Room) -> None:
    """Tell lobby pages a room was created, once the creation is committed."""
    transaction.on_commit(
        partial(publish, LOBBY, {"type": "room", "room": room.slug}), robust=True)

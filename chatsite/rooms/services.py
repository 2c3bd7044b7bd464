"""Actions with side effects on the comet channels, callable from views, commands or tasks.

The rule for messages: store first, publish after commit.  The room row is locked
while the message is inserted, so within a room ids are committed in id order
(PostgreSQL, several processes); a poll that reads the database after a publish
therefore never skips a lower id that commits later.
"""

from functools import partial
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from chatsite.rooms import presence
from chatsite.rooms.events import LOBBY, Signal, room_channel
from chatsite.rooms.models import Message, Room
from chatsite.rooms.validation import clean_nick, clean_text
from chatsite.throttle import Throttle
from comet_server import publish


def post_message(room: Room, author: str, text: str,
                 user: User | None = None) -> Message:
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
    publish(room_channel(slug), {"type": Signal.MESSAGE, "message": data}, cursor=data["id"])
    publish(LOBBY, {"type": Signal.MESSAGE, "room": slug}, cursor=data["id"])


def join(room: Room, nick: str) -> None:
    """Refresh ``nick``'s presence (called on each poll); signal when it is new."""
    if presence.touch(room, nick):
        presence.signal(room)


def leave(room: Room, nick: str) -> None:
    """``nick`` left the page; signal when it was present."""
    if presence.leave(room, nick):
        presence.signal(room)


TYPING_EVERY = 2.0  # seconds: at most one typing signal per (room, nick) per process
typing_throttle = Throttle(TYPING_EVERY)


def signal_typing(room: Room, nick: str) -> None:
    """Tell the room ``nick`` is typing (a signal: not replayed, not stored).

    Coalesced: a nick's repeats within ``TYPING_EVERY`` seconds publish nothing
    (pages show a typist for 4 s and repeat every 2.5 s while typing), and the
    room's long-polls get a signal window's typists together (runcomet
    ``--signal-window``).
    """
    if typing_throttle.allow((room.pk, nick)):
        publish(room_channel(room.slug), {"type": Signal.TYPING, "nick": nick}, coalesce=True)


def announce_room(room: Room) -> None:
    """Tell lobby pages a room was created, once the creation is committed."""
    transaction.on_commit(
        partial(publish, LOBBY, {"type": Signal.ROOM, "room": room.slug}), robust=True)

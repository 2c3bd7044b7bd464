"""``manage.py post_message ROOM TEXT [--nick NAME]``: post to a room from the command line.

Stores the message exactly as the web API does and publishes it after commit; with
``COMET_BROKER`` set, every runcomet process wakes its long-polls for the room.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chatsite.rooms.models import Room
from chatsite.rooms.services import post_message
from comet_server import get_hub


class Command(BaseCommand):
    help = "Post a message to a chat room (for operators and scripts)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("room", help="the room's slug")
        parser.add_argument("text", help="the message text")
        parser.add_argument("--nick", default="operator", help="author name (default operator)")

    def handle(self, *args: Any, room: str, text: str, nick: str, **options: Any) -> None:
        try:
            target = Room.objects.get(slug=room)
        except Room.DoesNotExist:
            raise CommandError(f"no room with slug {room!r}") from None
        try:
            message = post_message(target, nick, text)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"posted message {message.id} to {room!r}")
        if get_hub().broker is None:
            self.stderr.write("COMET_BROKER is not set: open pages will show it at their next "
                              "poll, not at once")

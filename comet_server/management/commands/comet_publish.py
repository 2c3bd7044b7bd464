"""``manage.py comet_publish CHANNEL [PAYLOAD] [--cursor N]``: publish from the command line.

With ``COMET_BROKER`` set the event goes through Redis and wakes waiters in every
``runcomet`` process; without a broker there is no other process to reach, so it says so.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from comet_server.push.default_hub import get_hub


class Command(BaseCommand):
    help = "Publish an event (JSON payload) on a comet channel."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("channel")
        parser.add_argument("payload", nargs="?", default="null", help="JSON (default null)")
        parser.add_argument("--cursor", type=int, default=None,
                            help="the event's cursor (e.g. the id of a stored record)")

    def handle(self, *args: Any, channel: str, payload: str, cursor: int | None,
               **options: Any) -> None:
        try:
            data = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise CommandError(f"payload is not JSON: {exc}") from None
        hub = get_hub()
        if hub.broker is None:
            raise CommandError("COMET_BROKER is not set: an in-process hub cannot reach the "
                               "runcomet process; set COMET_BROKER=redis://...")
        try:
            hub.publish(channel, data, cursor)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"published on {channel!r}" + (f" at cursor {cursor}" if cursor else ""))

"""Moderation: deleting and editing messages, stored first and published after commit.

A deletion is soft (``Message.deleted_at`` / ``deleted_by``: the row keeps the poll
cursor and the audit trail) and, like an edit, is recorded as a ``MessageChange`` whose
id orders the site's changes.  The change is published on the room's channel as a
signal ``{"type": "deleted"|"edited", "id": <change id>, "message": <message id>}``;
pages then read the changes past the newest one they have (``changes_after``), so a
page that was away when the signal went out still learns of the change on its next poll.
"""

from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from chatsite.rooms.conf import MAX_BATCH
from chatsite.rooms.events import room_channel
from chatsite.rooms.models import ChangeKind, Message, MessageChange, Room
from chatsite.rooms.validation import clean_text, parse_cursor
from comet_server import publish

RECENT = 50  # changes a wake-up reads once for all the pages of a room


def _record(message: Message, kind: ChangeKind, by: Any) -> MessageChange:
    """Store the change (inside the caller's transaction) and publish it after commit."""
    Room.objects.select_for_update().only("id").get(pk=message.room_id)
    change = MessageChange.objects.create(room_id=message.room_id, message=message,
                                          kind=kind, by=by)
    slug = Room.objects.only("slug").get(pk=message.room_id).slug
    payload = {"type": str(kind), "id": change.id, "message": message.id}
    transaction.on_commit(partial(publish, room_channel(slug), payload), robust=True)
    return change


def delete_message(message: Message, by: Any = None) -> MessageChange | None:
    """Soft-delete a message; None when it already was deleted."""
    with transaction.atomic():
        row = Message.objects.select_for_update().get(pk=message.pk)
        if row.deleted_at is not None:
            return None
        row.deleted_at = timezone.now()
        row.deleted_by = by if by is not None and by.is_authenticated else None
        row.save(update_fields=["deleted_at", "deleted_by"])
        message.deleted_at, message.deleted_by = row.deleted_at, row.deleted_by
        return _record(row, ChangeKind.DELETED, row.deleted_by)


def edit_message(message: Message, text: str, by: Any = None) -> MessageChange | None:
    """Replace a message's text (ValueError on bad text); None when nothing changed."""
    text = clean_text(text)
    with transaction.atomic():
        row = Message.objects.select_for_update().get(pk=message.pk)
        if row.deleted_at is not None or row.text == text:
            return None
        row.text, row.edited_at = text, timezone.now()
        row.save(update_fields=["text", "edited_at"])
        message.text, message.edited_at = row.text, row.edited_at
        who = by if by is not None and by.is_authenticated else None
        return _record(row, ChangeKind.EDITED, who)


def changes_after(room_id: int, after: int, limit: int = MAX_BATCH) -> list[dict[str, Any]]:
    """The room's changes with an id above ``after``, oldest first (each carries the
    message as it is now: a tombstone once deleted)."""
    rows = (MessageChange.objects.filter(room_id=room_id, id__gt=after)
            .select_related("message").order_by("id")[:limit])
    return [c.as_json() for c in rows]


def recent_changes(room_id: int) -> list[dict[str, Any]]:
    """The room's last ``RECENT`` changes, oldest first (one query per wake-up)."""
    rows = list(MessageChange.objects.filter(room_id=room_id)
                .select_related("message").order_by("-id")[:RECENT])
    return [c.as_json() for c in reversed(rows)]


def changes_cursor(value: str | None, room_id: int) -> int:
    """Where a page's moderation changes resume (its ``changes`` parameter); a page
    that sends none gets the changes made from now on (live deletions), not the past
    ones.  Raises ValueError for anything but a non-negative integer."""
    if value is None:
        return latest_change_id(room_id)
    return parse_cursor(value)


def latest_change_id(room_id: int) -> int:
    """The newest change id of a room (0 when none): a page's starting change cursor."""
    last = MessageChange.objects.filter(room_id=room_id).order_by("-id").values_list(
        "id", flat=True).first()
    return last or 0

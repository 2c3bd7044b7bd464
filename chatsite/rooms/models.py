"""Rooms, their messages, and who is present in them."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from chatsite.rooms.conf import MAX_NICK, MAX_TEXT
from chatsite.rooms.events import Signal


class Room(models.Model):
    """A chat room; its slug names it in URLs and comet channels."""

    slug = models.SlugField(max_length=50, unique=True)
    title = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    # Guests (visitors without an account) may post here; CHAT_GUESTS turns them off site-wide.
    # (db_default too: programs that insert rooms with SQL need not know these columns)
    guests_allowed = models.BooleanField(default=True, db_default=True)
    # A private room is seen only by its owner, its members and staff (404 for others).
    private = models.BooleanField(default=False, db_default=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="owned_rooms",
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True,
                                     related_name="chat_rooms")

    class Meta:
        ordering = ["title", "slug"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("rooms:room", args=[self.slug])


class RoomLog(models.Model):
    """A row of a room's log (messages, moderation changes): its auto id is the cursor
    a page resumes from, so rows are read in id order, each model through an index on
    (room, id)."""

    class Meta:
        abstract = True
        ordering = ["id"]


class Message(RoomLog):
    """A posted message.  The auto id orders messages site-wide and is the poll cursor."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.CharField(max_length=MAX_NICK)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="chat_messages",
    )
    text = models.TextField(max_length=MAX_TEXT)
    created = models.DateTimeField(default=timezone.now)
    # Moderation: a deleted message stays as a row (the poll cursor and the audit need
    # it) but its text is never served again; see MessageChange.
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta(RoomLog.Meta):
        indexes = [models.Index(fields=["room", "id"], name="rooms_msg_room_id")]

    def __str__(self) -> str:
        return f"{self.author}: {self.text[:40]}"

    def as_json(self) -> dict:
        """The message as the HTTP API returns it: a deleted one is a tombstone
        ``{"id", "deleted": true}`` (it still moves cursors; pages do not show it)."""
        if self.deleted_at is not None:
            return {"id": self.id, "deleted": True}
        data = {
            "id": self.id,
            "author": self.author,
            "text": self.text,
            "created": self.created.isoformat(),
        }
        if self.edited_at is not None:
            data["edited"] = self.edited_at.isoformat()
        return data


class ChangeKind(models.TextChoices):
    """What a moderator did to a message (the type of its signal, too)."""

    DELETED = Signal.DELETED.value
    EDITED = Signal.EDITED.value


class MessageChange(RoomLog):
    """One moderation change of a message.  Its auto id orders the changes of the whole
    site: a page resuming after change N asks for the changes above N."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="changes")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="changes")
    kind = models.CharField(max_length=10, choices=ChangeKind.choices)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                           on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta(RoomLog.Meta):
        indexes = [models.Index(fields=["room", "id"], name="rooms_change_room_id")]

    def __str__(self) -> str:
        return f"{self.kind} {self.message_id}"

    def as_json(self) -> dict:
        """``{"id", "type": "deleted"|"edited", "message": <message JSON>}``."""
        return {"id": self.id, "type": self.kind, "message": self.message.as_json()}


class GuestName(models.Model):
    """A display name held by a guest's session while the session is active.

    ``key`` is the name's canonical form (NFKC, case-folded): two names that look the
    same or differ only in case have the same key, so only one session can hold them.
    """

    key = models.CharField(max_length=160, unique=True)
    name = models.CharField(max_length=MAX_NICK)
    session_key = models.CharField(max_length=40, db_index=True)
    last_seen = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class Presence(models.Model):
    """A nick seen polling a room; present while ``last_seen`` is recent."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="presences")
    nick = models.CharField(max_length=MAX_NICK)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "nick"], name="rooms_presence_room_nick"),
        ]

    def __str__(self) -> str:
        return f"{self.nick} in {self.room_id}"

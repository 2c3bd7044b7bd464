"""Rooms, their messages, and who is present in them."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Room(models.Model):
    """A chat room; its slug names it in URLs and comet channels."""

    slug = models.SlugField(max_length=50, unique=True)
    title = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["title", "slug"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("rooms:room", args=[self.slug])


class Message(models.Model):
    """A posted message.  The auto id orders messages site-wide and is the poll cursor."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.CharField(max_length=40)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="chat_messages",
    )
    text = models.TextField(max_length=2000)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["room", "id"], name="rooms_msg_room_id")]

    def __str__(self) -> str:
        return f"{self.author}: {self.text[:40]}"

    def as_json(self) -> dict:
        """The message as the HTTP API returns it."""
        return {
            "id": self.id,
            "author": self.author,
            "text": self.text,
            "created": self.created.isoformat(),
        }


class Presence(models.Model):
    """A nick seen polling a room; present while ``last_seen`` is recent."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="presences")
    nick = models.CharField(max_length=40)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "nick"], name="rooms_presence_room_nick"),
        ]

    def __str__(self) -> str:
        return f"{self.nick} in {self.room_id}"

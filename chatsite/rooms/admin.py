"""Admin for rooms and messages.  Deleting or editing a message here goes through
``moderation`` like the room page does: soft delete, stored change, published to pages."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from chatsite.rooms import moderation
from chatsite.rooms.models import GuestName, Message, MessageChange, Presence, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("slug", "title", "private", "owner", "guests_allowed", "created")
    list_filter = ("private", "guests_allowed")
    search_fields = ("slug", "title")
    prepopulated_fields = {"slug": ("title",)}
    raw_id_fields = ("owner",)
    filter_horizontal = ("members",)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "room", "author", "short_text", "created", "deleted_at", "edited_at")
    list_filter = ("room", ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("author", "text")
    raw_id_fields = ("user",)
    list_select_related = ("room",)

    def get_readonly_fields(self, request: HttpRequest, obj: Message | None = None) -> Any:
        # Once posted, only the text may change (an edit, published to pages).
        if obj is None:
            return ("deleted_at", "deleted_by", "edited_at")
        return ("room", "author", "user", "created", "deleted_at", "deleted_by", "edited_at")

    @admin.display(description="text")
    def short_text(self, obj: Message) -> str:
        return obj.text[:80]

    def save_model(self, request: HttpRequest, obj: Message, form: Any, change: bool) -> None:
        if change and "text" in form.changed_data:
            moderation.edit_message(obj, obj.text, by=request.user)
        elif not change:
            super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: Message) -> None:
        moderation.delete_message(obj, by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        for message in queryset:
            moderation.delete_message(message, by=request.user)


@admin.register(MessageChange)
class MessageChangeAdmin(admin.ModelAdmin):
    list_display = ("id", "room", "message", "kind", "by", "at")
    list_filter = ("kind", "room")
    raw_id_fields = ("message", "by")


@admin.register(GuestName)
class GuestNameAdmin(admin.ModelAdmin):
    list_display = ("name", "session_key", "last_seen")
    search_fields = ("name",)


@admin.register(Presence)
class PresenceAdmin(admin.ModelAdmin):
    list_display = ("room", "nick", "last_seen")
    list_filter = ("room",)

"""Admin for rooms and messages (moderation: edit titles, delete messages)."""

from django.contrib import admin

from chatsite.rooms.models import Message, Presence, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("slug", "title", "created")
    search_fields = ("slug", "title")
    prepopulated_fields = {"slug": ("title",)}


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "room", "author", "short_text", "created")
    list_filter = ("room",)
    search_fields = ("author", "text")
    raw_id_fields = ("user",)
    list_select_related = ("room",)

    @admin.display(description="text")
    def short_text(self, obj: Message) -> str:
        return obj.text[:80]


@admin.register(Presence)
class PresenceAdmin(admin.ModelAdmin):
    list_display = ("room", "nick", "last_seen")
    list_filter = ("room",)

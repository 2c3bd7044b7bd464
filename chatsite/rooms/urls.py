"""URLs of the chat, mounted at the site root."""

from django.urls import path

from chatsite.rooms import api, moderation_views, sockets, streams, views

app_name = "rooms"
urlpatterns = [
    path("", views.lobby, name="lobby"),
    path("rooms/updates", api.lobby_updates, name="lobby-updates"),
    path("rooms/events", streams.lobby_events, name="lobby-events"),
    path("rooms/socket", sockets.lobby_socket, name="lobby-socket"),
    path("rooms/<slug:slug>/", views.room, name="room"),
    path("rooms/<slug:slug>/nick", views.choose_nick, name="nick"),
    path("rooms/<slug:slug>/messages", api.messages, name="messages"),
    path("rooms/<slug:slug>/updates", api.room_updates, name="updates"),
    path("rooms/<slug:slug>/events", streams.room_events, name="events"),
    path("rooms/<slug:slug>/socket", sockets.room_socket, name="socket"),
    path("rooms/<slug:slug>/typing", api.typing, name="typing"),
    path("rooms/<slug:slug>/leave", api.leave, name="leave"),
    path("rooms/<slug:slug>/messages/<int:message_id>/delete",
         moderation_views.delete_message, name="delete-message"),
    path("rooms/<slug:slug>/members", moderation_views.add_member, name="add-member"),
    path("rooms/<slug:slug>/members/<int:user_id>/remove", moderation_views.remove_member,
         name="remove-member"),
]

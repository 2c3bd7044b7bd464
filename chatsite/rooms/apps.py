"""App config for the chat rooms."""

from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "chatsite.rooms"
    label = "rooms"
    verbose_name = "Chat rooms"

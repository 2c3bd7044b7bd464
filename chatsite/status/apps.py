from django.apps import AppConfig


class StatusConfig(AppConfig):
    name = "chatsite.status"
    label = "status"
    verbose_name = "Server status"

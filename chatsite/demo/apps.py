from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "chatsite.demo"
    label = "demo"

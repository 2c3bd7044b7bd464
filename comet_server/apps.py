"""Django app config: ``comet_server`` in INSTALLED_APPS gives ``manage.py runcomet``."""

from django.apps import AppConfig
from django.core import checks


class CometServerConfig(AppConfig):
    name = "comet_server"
    verbose_name = "Comet server"

    def ready(self) -> None:
        checks.register(check_middleware)


def check_middleware(app_configs: object, **kwargs: object) -> list[checks.CheckMessage]:
    from django.conf import settings

    if "comet_server.middleware.CometMiddleware" not in settings.MIDDLEWARE:
        return [checks.Warning(
            "comet_server.middleware.CometMiddleware is not in MIDDLEWARE",
            hint="defer_in_time() needs it to call the next view with the request.",
            id="comet_server.W001",
        )]
    return []

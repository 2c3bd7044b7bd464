"""``manage.py runcomet``: serve the Django project on the comet server."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.core.servers.basehttp import get_internal_wsgi_application
from django.db import connections
from django.utils import autoreload

from comet_server import reloader
from comet_server.options import add_server_arguments, config_from
from comet_server.settings import setting

ADDRPORT = re.compile(r"^(?:(?P<host>\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]|[\w.-]+):)?"
                      r"(?P<port>\d+)$")


def _positive(name: str, value: Any, minimum: int = 1) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise CommandError(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise CommandError(f"{name} must be at least {minimum}, got {number}")
    return number


class Command(BaseCommand):
    help = ("Serve the project on the comet server: a libevent WSGI server that parks "
            "deferred responses without holding a thread.")
    requires_system_checks: list[str] = []
    suppressed_base_arguments = {"--verbosity", "--traceback"}

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000",
                            help="host:port or port to listen on (default 127.0.0.1:8000)")
        parser.add_argument("--noreload", action="store_false", dest="use_reloader",
                            help="do not restart on code changes (DEBUG only restarts anyway)")
        parser.add_argument("--nostatic", action="store_false", dest="use_static_handler",
                            help="do not serve static files under DEBUG")
        parser.add_argument("--insecure", action="store_true",
                            help="serve static files even with DEBUG off")
        parser.add_argument("--workers", default=setting("COMET_WORKERS", 1),
                            help="worker processes sharing the port (needs COMET_BROKER if > 1)")
        add_server_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        match = ADDRPORT.match(options["addrport"])
        if not match:
            raise CommandError(f'"{options["addrport"]}" is not a valid port or address:port')
        host = (match["host"] or "127.0.0.1").strip("[]")
        port = _positive("port", match["port"], 0)
        if port > 65535:
            raise CommandError(f"port must be at most 65535, got {port}")
        workers = _positive("--workers", options["workers"])
        try:
            config = config_from(options, multiprocess=workers > 1)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if workers > 1 and not setting("COMET_BROKER"):
            raise CommandError("--workers > 1 needs COMET_BROKER (e.g. redis://127.0.0.1:6379/0): "
                               "without a broker a publish in one worker cannot wake the others")
        self._configure_logging()
        self.run_args = (host, port, workers, config, options)
        if options["use_reloader"] and settings.DEBUG and workers == 1:
            from comet_server.runner import request_shutdown

            reloader.run_with_reloader(self.inner_run, request_shutdown)
        else:
            self.inner_run()

    def _configure_logging(self) -> None:
        logger = logging.getLogger("comet_server")
        if not logger.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False

    def get_handler(self, options: dict[str, Any]) -> Any:
        handler = get_internal_wsgi_application()
        from django.apps import apps

        if (options["use_static_handler"] and (settings.DEBUG or options["insecure"])
                and apps.is_installed("django.contrib.staticfiles")):
            from django.contrib.staticfiles.handlers import StaticFilesHandler

            handler = StaticFilesHandler(handler)
        return handler

    def inner_run(self) -> None:
        from comet_server.runner import serve

        host, port, workers, config, options = self.run_args
        autoreload.raise_last_exception()
        self.check(display_num_errors=True)
        self.check_migrations()
        handler = self.get_handler(options)
        shown = f"[{host}]" if ":" in host else host

        def announce(bound_port: int) -> None:
            self.stdout.write(
                f"Starting comet server at http://{shown}:{bound_port}/ "
                f"(pid {__import__('os').getpid()}, {workers} worker(s))\n"
                "Quit the server with CONTROL-C.")
            self.stdout.flush()

        try:
            serve(handler, host, port, config=config, workers=workers, announce=announce,
                  before_fork=connections.close_all)
        except OSError as exc:
            raise CommandError(f"cannot listen on {shown}:{port}: {exc.strerror or exc}") from None
        if reloader.in_reloaded_child():
            reloader.exit_child(0)  # drained: leave the file watcher too

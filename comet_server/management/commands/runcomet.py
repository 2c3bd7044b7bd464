"""``manage.py runcomet``: Django's ``runserver``, serving on the comet server.

Built on the staticfiles ``runserver`` (as daphne's is): the address syntax, ``--ipv6``,
static files under DEBUG (``--nostatic``, ``--insecure``), the system and migration
checks and their messages are Django's own.  What differs: the server (a libevent
loop that parks deferred responses), ``--workers`` (a supervised pre-fork), the
server options of ``comet_server.serving.config``, and an autoreloader that drains parked
clients on Ctrl-C instead of killing them.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from django.conf import settings
from django.contrib.staticfiles.management.commands.runserver import (
    Command as RunserverCommand,
)
from django.core.management.base import CommandError
from django.db import connections

from comet_server import reloader
from comet_server.serving.options import add_server_arguments, config_from
from comet_server.serving.runner import request_shutdown, serve


class Command(RunserverCommand):
    help = ("Serve the project on the comet server: a libevent WSGI server that parks "
            "deferred responses without holding a thread.")
    # Set by runserver's handle() from the address argument (undeclared in its stubs).
    addr: str
    port: str
    _raw_ipv6: bool

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        add_server_arguments(parser)

    def run(self, **options: Any) -> None:
        """Check the options, then serve (under the draining autoreloader in DEBUG)."""
        try:
            self.config = config_from(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self._configure_logging()
        if options["use_reloader"] and settings.DEBUG and self.config.workers == 1:
            reloader.run_with_reloader(lambda: self.inner_run(None, **options),
                                       request_shutdown)
        else:
            self.inner_run(None, **options)

    def inner_run(self, *args: Any, **options: Any) -> None:
        from django.utils import autoreload

        autoreload.raise_last_exception()
        if not options["skip_checks"]:
            self.check(display_num_errors=True)
        self.check_migrations()
        for conn in connections.all(initialized_only=True):
            conn.close()  # the migration check's: each process opens its own
        handler = self.get_handler(*args, **options)
        workers = self.config.workers
        shown = f"[{self.addr}]" if self._raw_ipv6 else self.addr

        def announce(bound_port: int) -> None:
            self.stdout.write(
                f"Starting comet server at {self.protocol}://{shown}:{bound_port}/ "
                f"(pid {os.getpid()}, {workers} worker(s))\n"
                "Quit the server with CONTROL-C.")
            self.stdout.flush()

        try:
            serve(handler, self.addr, int(self.port), config=self.config, announce=announce,
                  before_fork=connections.close_all)
        except OSError as exc:
            raise CommandError(f"cannot listen on {shown}:{self.port}: "
                               f"{exc.strerror or exc}") from None
        if reloader.in_reloaded_child():
            reloader.exit_child(0)  # drained: leave the file watcher too

    def _configure_logging(self) -> None:
        logger = logging.getLogger("comet_server")
        if not logger.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False

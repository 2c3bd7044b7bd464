"""Autoreload that drains: Django's file watcher, but a stop signal drains the server.

Django's ``run_with_reloader`` runs the server in a child process, in a thread, and
on Ctrl-C or SIGTERM kills that child: every parked long-poll is dropped unanswered.
Here the parent puts the child in its own process group (Ctrl-C reaches the parent
only) and forwards each stop signal once; the child's main thread turns it into a
drain of the server thread, which exits the process when it is done.  A second
signal stops at once, as without the reloader.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable

from django.utils import autoreload

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def in_reloaded_child() -> bool:
    return os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true"


def run_with_reloader(main: Callable[[], None], request_stop: Callable[[], None]) -> None:
    """Run ``main`` in a child restarted on code changes; ``request_stop`` drains it."""
    if in_reloaded_child():
        for signum in STOP_SIGNALS:
            signal.signal(signum, lambda signum, frame: request_stop())
        autoreload.start_django(autoreload.get_reloader(), main)
    else:
        sys.exit(_restart_loop())


def _restart_loop() -> int:
    args = autoreload.get_child_arguments()
    env = {**os.environ, autoreload.DJANGO_AUTORELOAD_ENV: "true"}
    while True:
        child = subprocess.Popen(args, env=env, close_fds=False, process_group=0)

        def forward(signum: int, frame: object, child: subprocess.Popen = child) -> None:
            child.send_signal(signal.SIGTERM)

        for signum in STOP_SIGNALS:
            signal.signal(signum, forward)
        code = child.wait()
        if code != 3:  # 3: a file changed, start a fresh child
            return code


def exit_child(code: int = 0) -> None:
    """End the reloaded child from the server thread (the main thread runs the
    file watcher forever)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

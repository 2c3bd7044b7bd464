"""Run a WSGI application on the comet server: one process, or a supervised pre-fork."""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from comet_server import settings
from comet_server.push.default_hub import set_hub
from comet_server.push.hub import Hub
from comet_server.serving.config import ServerConfig
from comet_server.serving.logs import use_json_logs
from comet_server.serving.prefork import Supervisor
from comet_server.serving.server import CometServer, WSGIApp, listen, raise_fd_limit
from comet_server.serving.snapshot import sum_snapshots


def serve(app: WSGIApp, host: str, port: int, *, config: ServerConfig,
          announce: Callable[[int], None] | None = None,
          before_fork: Callable[[], None] | None = None) -> None:
    """Listen on host:port and serve ``app`` until SIGTERM/SIGINT (``config.workers``
    processes)."""
    raise_fd_limit()
    if config.log_format == "json":
        use_json_logs()
    sock = listen(host, port)
    bound_port = sock.getsockname()[1]
    if config.ready_fd:
        tell_ready(config.ready_fd, bound_port)
    if config.workers > 1:
        def serve_worker(sock: socket.socket, on_start: Callable[[CometServer], None]) -> None:
            serve_socket(app, sock, config=config, hub=make_hub(), on_start=on_start)

        # The workers' metrics snapshots meet here (see serving.metrics).
        metrics_dir = tempfile.mkdtemp(prefix="comet-metrics-") if config.metrics_path else ""
        config = dataclasses.replace(config, metrics_dir=metrics_dir)
        try:
            Supervisor(serve_worker, sock, config=config, before_fork=before_fork).run(announce)
        finally:
            if metrics_dir:
                shutil.rmtree(metrics_dir, ignore_errors=True)
        return
    if announce is not None:
        announce(bound_port)
    serve_socket(app, sock, config=config, hub=make_hub())


def tell_ready(fd: int, port: int) -> None:
    """Write the bound port to the inherited ``fd`` and close it: a supervisor or a
    test learns the server listens, and where, without parsing its output."""
    try:
        os.write(fd, b"%d\n" % port)
        os.close(fd)
    except OSError:
        pass  # a reloaded child: its parent's descriptor was used and closed already


def make_hub() -> Hub:
    """This process's hub, with the broker ``COMET_BROKER`` names (if any); it becomes
    the hub ``publish()`` uses, so views publish through it."""
    hub = settings.make_hub()
    set_hub(hub)
    return hub


_running: list[CometServer] = []


def serve_socket(app: WSGIApp, sock: socket.socket, *, config: ServerConfig, hub: Hub,
                 on_start: Callable[[CometServer], None] | None = None) -> None:
    """Serve on an already listening socket in this process with ``hub``;
    ``on_start(server)`` runs just before its loop does (a pre-fork worker starts its
    heartbeat there)."""
    server = CometServer(app, sock, hub=hub, config=config)
    if hub.broker is not None:
        hub.broker.attach(server.loop, hub)
    _running.append(server)
    # Everything allocated so far (Django, the application, its imports) lives as long
    # as the process: keep it out of every garbage collection from now on, whose pause
    # then grows only with what is parked.
    gc.freeze()
    try:
        if on_start is not None:
            on_start(server)
        server.serve_forever(
            handle_signals=threading.current_thread() is threading.main_thread())
    finally:
        _running.remove(server)


def worker_metrics() -> dict[str, Any] | None:
    """Every worker's metrics snapshot and their sum, as the server of this process
    sees them (``{"workers": [...], "total": {...}}``); None when no comet server runs
    here (runserver, gunicorn, tests) or metrics are off."""
    for server in list(_running):
        if server.metrics is not None:
            workers = sorted(server.worker_snapshots(), key=lambda s: s["worker"])
            return {"workers": workers, "total": sum_snapshots(workers),
                    "answered_by": server.pid}
    return None


def request_shutdown() -> None:
    """Drain the servers of this process (from any thread, e.g. a signal handler on
    the main thread while the server runs in another); a second call stops at once."""
    for server in list(_running):
        server.loop.call_soon(server.shutdown)

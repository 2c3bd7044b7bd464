"""Run a WSGI application on the comet server: one process, or a supervised pre-fork."""

from __future__ import annotations

import threading
from collections.abc import Callable

from comet_server.hub import get_hub
from comet_server.server import CometServer, ServerConfig, WSGIApp, listen, raise_fd_limit


def serve(app: WSGIApp, host: str, port: int, *, config: ServerConfig, workers: int = 1,
          announce: Callable[[int], None] | None = None,
          before_fork: Callable[[], None] | None = None) -> None:
    """Listen on host:port and serve ``app`` until SIGTERM/SIGINT."""
    raise_fd_limit()
    sock = listen(host, port)
    bound_port = sock.getsockname()[1]
    if workers > 1:
        from comet_server.prefork import Supervisor

        Supervisor(app, sock, config=config, workers=workers,
                   before_fork=before_fork).run(announce)
        return
    if announce is not None:
        announce(bound_port)
    serve_socket(app, sock, config=config)


_running: list[CometServer] = []


def serve_socket(app: WSGIApp, sock: object, *, config: ServerConfig,
                 on_start: Callable[[CometServer], None] | None = None) -> None:
    """Serve on an already listening socket in this process; ``on_start(server)`` runs
    just before its loop does (a pre-fork worker starts its heartbeat there)."""
    hub = get_hub()
    server = CometServer(app, sock, hub=hub, config=config)  # type: ignore[arg-type]
    broker = hub.broker
    if broker is not None and hasattr(broker, "attach"):
        broker.attach(server.loop, hub)
    _running.append(server)
    try:
        if on_start is not None:
            on_start(server)
        server.serve_forever(
            handle_signals=threading.current_thread() is threading.main_thread())
    finally:
        _running.remove(server)


def request_shutdown() -> None:
    """Drain the servers of this process (from any thread, e.g. a signal handler on
    the main thread while the server runs in another); a second call stops at once."""
    for server in list(_running):
        server.loop.call_soon(server.shutdown)

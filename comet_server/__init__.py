"""comet_server: server push for synchronous Django on a libevent WSGI server.

Public API for views::

    from comet_server import publish, wait_for_events, event_stream, defer_in_time

    ``ServerSentEvent`` and ``last_event_id`` go with ``event_stream``; ``websocket``
    accepts a WebSocket handshake (``comet_server.sockets``).

The names are imported lazily so that the server core works without Django.
"""

from __future__ import annotations

from typing import Any

from comet_server.push.default_hub import get_hub, publish, set_hub_factory
from comet_server.push.events import Delivery, Event
from comet_server.push.hub import Hub
from comet_server.push.sse import ServerSentEvent
from comet_server.push.waits import FollowEvents, Sleep, StreamEnd, WaitForEvents
from comet_server.settings import make_hub

# publish() anywhere (a view, a command, plain Python) reaches COMET_BROKER if set.
set_hub_factory(make_hub)

__all__ = [
    "Delivery",
    "Event",
    "FollowEvents",
    "Hub",
    "ServerSentEvent",
    "Sleep",
    "StreamEnd",
    "WaitForEvents",
    "defer_in_time",
    "event_stream",
    "get_hub",
    "last_event_id",
    "publish",
    "stream_events",
    "wait_for_events",
    "websocket",
    "worker_metrics",
]

_DJANGO_NAMES = {"defer_in_time", "wait_for_events", "stream_events", "event_stream",
                 "last_event_id", "DeferredResponse"}


def __getattr__(name: str) -> Any:
    if name == "worker_metrics":  # the server's metrics, for a status page
        from comet_server.serving.runner import worker_metrics

        return worker_metrics
    if name in ("websocket", "Socket"):
        from comet_server import sockets

        return getattr(sockets, name)
    if name in _DJANGO_NAMES:
        from comet_server import responses

        return getattr(responses, name)
    raise AttributeError(f"module 'comet_server' has no attribute {name!r}")

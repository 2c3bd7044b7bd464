"""The process's hub (made on first use by a factory the Django app installs), and
``publish`` through it, with one warning per process when a publish reaches nobody."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from comet_server.push.events import Event
from comet_server.push.hub import Hub

log = logging.getLogger(__name__)

_default_hub: Hub | None = None
_default_lock = threading.Lock()
_hub_factory: Callable[[], Hub] = Hub
_warned_unreachable = False


def set_hub_factory(factory: Callable[[], Hub]) -> None:
    """How ``get_hub`` makes the process's hub when none is set (the Django app
    installs one that reads ``COMET_BROKER``; the core reads no settings)."""
    global _hub_factory
    _hub_factory = factory


def get_hub() -> Hub:
    """The process's hub, made on first use by the hub factory."""
    global _default_hub
    if _default_hub is None:
        with _default_lock:
            if _default_hub is None:
                _default_hub = _hub_factory()
    return _default_hub


def set_hub(hub: Hub | None) -> None:
    """Replace the process's hub (tests, servers that build their own)."""
    global _default_hub
    _default_hub = hub


def publish(channel: str, payload: Any = None, cursor: int | None = None, *,
            coalesce: bool = False) -> Event:
    """Publish an event on ``channel`` through the process's hub (``coalesce``: a
    signal whose wake-up of parked long-polls may wait, see ``Hub.set_signal_window``).

    A publish that can reach nobody (no ``COMET_BROKER``, no comet server running in
    this process, no waiter here on ``channel``: typically ``manage.py shell`` or a
    worker without the broker setting) logs one warning per process, then stays quiet.
    """
    hub = get_hub()
    unreachable = (not _warned_unreachable and isinstance(channel, str)
                   and hub.reaches_nobody(channel))
    event = hub.publish(channel, payload, cursor, coalesce=coalesce)  # bad input raises first
    if unreachable:
        _warn_unreachable(channel)
    return event


def _warn_unreachable(channel: str) -> None:
    global _warned_unreachable
    with _default_lock:  # two threads at once: still one warning
        if _warned_unreachable:
            return
        _warned_unreachable = True
    log.warning(
        "publish(%r) reached nobody: COMET_BROKER is not set and no comet server runs in "
        "this process, so other processes (runcomet) never see it; set COMET_BROKER="
        "redis://... in this process's environment too (warned once per process)", channel)

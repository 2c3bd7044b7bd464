"""Where comet_server reads its configuration: Django settings first, then the environment."""

from __future__ import annotations

import os
from typing import Any


def setting(name: str, default: Any = None) -> Any:
    """``settings.NAME`` when Django is configured and has it, else ``$NAME``, else default."""
    try:
        from django.conf import settings

        if settings.configured and hasattr(settings, name):
            return getattr(settings, name)
    except ImportError:  # comet_server's core runs without Django too
        pass
    return os.environ.get(name, default)


def make_broker() -> Any:
    """The broker named by ``COMET_BROKER`` (unset or empty: none, the in-process hub)."""
    url = setting("COMET_BROKER") or ""
    if not url:
        return None
    if url.startswith(("redis://", "rediss://", "unix://")):
        from comet_server.redis_broker import RedisBroker

        return RedisBroker(url)
    raise ValueError(f"COMET_BROKER={url!r}: only redis:// URLs are supported")

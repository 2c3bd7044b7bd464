"""Where comet_server reads its configuration: Django settings first, then the environment.

Typed values are parsed strictly: ``setting_bool`` takes 1/0, true/false, yes/no, on/off
(any case) and refuses anything else, so ``COMET_STATS_PUBLIC=0`` means off, never
``bool("0")``.  A bad value raises Django's ``ImproperlyConfigured`` (``ValueError``
without Django) naming the variable and the value, in one line.
"""

from __future__ import annotations

import os
from typing import Any

from comet_server.push.broker import Broker
from comet_server.push.hub import Hub

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def setting(name: str, default: Any = None) -> Any:
    """``settings.NAME`` when Django is configured and has it, else ``$NAME``, else default."""
    try:
        from django.conf import settings

        if settings.configured and hasattr(settings, name):
            return getattr(settings, name)
    except ImportError:  # comet_server's core runs without Django too
        pass
    return os.environ.get(name, default)


def parse_bool(value: str | bool) -> bool:
    """A bool as is; a string among 1/0, true/false, yes/no, on/off (any case, surrounding
    spaces ignored); anything else (``""``, ``"maybe"``, ``2``) raises ``ValueError``."""
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"not a boolean: {value!r} (use 1/0, true/false, yes/no or on/off)")


def setting_bool(name: str, default: bool) -> bool:
    """``setting(name, default)`` parsed by :func:`parse_bool`; a bad value is refused."""
    value = setting(name, default)
    try:
        return parse_bool(value)
    except ValueError as exc:
        raise _config_error(f"{name}: {exc}") from None


def setting_int(name: str, default: int, minimum: int | None = None) -> int:
    """``setting(name, default)`` as a whole number (at least ``minimum`` if given)."""
    value = setting(name, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _config_error(f"{name}: not a whole number: {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise _config_error(f"{name}: not a whole number: {value!r}") from None
    if minimum is not None and number < minimum:
        raise _config_error(f"{name}: must be at least {minimum}, got {number}")
    return number


def _config_error(message: str) -> Exception:
    try:
        from django.core.exceptions import ImproperlyConfigured
    except ImportError:  # without Django
        return ValueError(message)
    return ImproperlyConfigured(message)


def make_hub() -> Hub:
    """A hub with the broker ``COMET_BROKER`` names (the default of ``get_hub``)."""
    return Hub(broker=make_broker())


def make_broker() -> Broker | None:
    """The broker named by ``COMET_BROKER`` (unset or empty: none, the in-process hub).
    The Redis client is imported only then: it is an optional dependency."""
    url = setting("COMET_BROKER") or ""
    if not url:
        return None
    if url.startswith(("redis://", "rediss://", "unix://")):
        from comet_server.push.redis_broker import RedisBroker

        return RedisBroker(url)
    raise ValueError(f"COMET_BROKER={url!r}: only redis:// URLs are supported")

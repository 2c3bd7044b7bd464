"""Tunables of the chat, read from Django settings at call time so tests can override them."""

from django.conf import settings


def poll_timeout() -> float:
    """Seconds an updates long-poll stays parked (``CHAT_POLL_TIMEOUT``, default 25)."""
    return float(getattr(settings, "CHAT_POLL_TIMEOUT", 25.0))


def presence_seconds() -> float:
    """How recently a nick must have polled to count as present (``CHAT_PRESENCE_SECONDS``)."""
    return float(getattr(settings, "CHAT_PRESENCE_SECONDS", 40.0))


def guests_allowed() -> bool:
    """Whether visitors without an account may post anywhere (``CHAT_GUESTS``)."""
    return bool(getattr(settings, "CHAT_GUESTS", True))


def guest_name_seconds() -> float:
    """How long a guest's name stays theirs after their session was last seen
    (``CHAT_GUEST_NAME_SECONDS``, default 24 h)."""
    return float(getattr(settings, "CHAT_GUEST_NAME_SECONDS", 24 * 3600))


def websocket_enabled() -> bool:
    """Whether pages try a WebSocket before the event stream (``CHAT_WEBSOCKET``)."""
    return bool(getattr(settings, "CHAT_WEBSOCKET", True))


def max_rooms_per_user() -> int:
    """Rooms one account may own (``CHAT_MAX_ROOMS_PER_USER``, default 20)."""
    return int(getattr(settings, "CHAT_MAX_ROOMS_PER_USER", 20))


# Rate limits: (setting, default) as "COUNT/SECONDS"; see limits.py.
RATES = {
    "post-session": ("CHAT_RATE_POST_SESSION", "10/10"),
    "post-address": ("CHAT_RATE_POST_ADDRESS", "30/10"),
    "room-address": ("CHAT_RATE_ROOM_ADDRESS", "5/300"),
    "name-session": ("CHAT_RATE_NAME_SESSION", "5/60"),
    "typing-session": ("CHAT_RATE_TYPING_SESSION", "60/60"),
}


def rate(scope: str) -> tuple[int, float]:
    """``(count, seconds)`` of a rate limit: at most ``count`` per ``seconds``."""
    name, default = RATES[scope]
    text = str(getattr(settings, name, default))
    count, _, seconds = text.partition("/")
    try:
        parsed = int(count), float(seconds)
    except ValueError:
        raise ValueError(f"{name} must look like COUNT/SECONDS, e.g. 10/10; got {text!r}") \
            from None
    if parsed[0] < 1 or parsed[1] <= 0:
        raise ValueError(f"{name}: COUNT and SECONDS must be positive; got {text!r}")
    return parsed


# Limits of the HTTP API (part of the contract for other clients).
MAX_TEXT = 2000
MAX_NICK = 40
PAGE_SIZE = 50  # messages on page load and per "load older"
MAX_BATCH = 500  # messages per updates answer; the client asks again from the cursor

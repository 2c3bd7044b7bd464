"""Tunables of the chat, read from Django settings at call time so tests can override them."""

from django.conf import settings


def poll_timeout() -> float:
    """Seconds an updates long-poll stays parked (``CHAT_POLL_TIMEOUT``, default 25)."""
    return float(getattr(settings, "CHAT_POLL_TIMEOUT", 25.0))


def presence_seconds() -> float:
    """How recently a nick must have polled to count as present (``CHAT_PRESENCE_SECONDS``)."""
    return float(getattr(settings, "CHAT_PRESENCE_SECONDS", 40.0))


# Limits of the HTTP API (part of the contract for other clients).
MAX_TEXT = 2000
MAX_NICK = 40
PAGE_SIZE = 50  # messages on page load and per "load older"
MAX_BATCH = 500  # messages per updates answer; the client asks again from the cursor

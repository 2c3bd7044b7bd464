"""What a chat page's script needs from the server, handed over as ``data-*`` attributes.

The browser code holds no defaults of its own: every timing and limit it uses comes
from here, so a setting changed on the server is the one the page follows.
"""

from __future__ import annotations

from typing import Any

from chatsite.rooms import conf, events, streams

# Someone's "is typing…" line stays this long after their last signal; a page signals
# at most this often while its visitor types (well inside CHAT_RATE_TYPING_SESSION).
TYPING_SHOWN_SECONDS = 4.0
TYPING_SIGNAL_EVERY_SECONDS = 2.5
# A reconnect quieter than the streams' longest retry plus this is not shown to people.
RECONNECT_MARGIN_SECONDS = 1.5


def live_attrs() -> dict[str, Any]:
    """The settings of comet.js on any page with live updates (``data-`` + key)."""
    longest_retry = streams.STREAM_RETRY * (1 + streams.RETRY_SPREAD)
    return {
        "poll-seconds": conf.poll_timeout(),
        "first-event-ms": round(conf.first_event_seconds() * 1000),
        "grace-ms": round((longest_retry + RECONNECT_MARGIN_SECONDS) * 1000),
        **events.page_attrs(),  # data-events: the names of the streams' frames
        "websocket": int(conf.websocket_enabled()),
    }


def room_attrs() -> dict[str, Any]:
    """The room page's settings besides ``live_attrs``."""
    return {
        **live_attrs(),
        "max-text": conf.MAX_TEXT,
        "max-nick": conf.MAX_NICK,
        "typing-shown-ms": round(TYPING_SHOWN_SECONDS * 1000),
        "typing-every-ms": round(TYPING_SIGNAL_EVERY_SECONDS * 1000),
    }

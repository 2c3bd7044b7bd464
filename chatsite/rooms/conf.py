"""The chat's settings, each defined once here: its name, default, type and meaning.

A setting ``CHAT_<NAME>`` is read at call time from Django's settings (so a test can
override it), which ``chatsite/settings.py`` fills from the environment at start
(``from_environment``: a bad value stops the start with one line naming it), else it
is the default below (a settings module that is not the chat's).  The table of
``chatsite/rooms/README.md`` is ``markdown_table()``'s (a test keeps them equal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings
from environs import EnvError, validate

if TYPE_CHECKING:
    from environs import Env

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ChatSetting:
    """One setting: ``kind`` is the environs parser of its environment variable
    (``flag``: the strict booleans of chatsite.settings; ``rate``: ``COUNT/SECONDS``)."""

    name: str
    default: Any
    kind: str
    meaning: str
    minimum: float | None = None

    def shown(self) -> str:
        """The default as the README shows it (what one would write in the variable)."""
        if isinstance(self.default, bool):
            return "1" if self.default else "0"
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return str(self.default)


SETTINGS: tuple[ChatSetting, ...] = (
    ChatSetting("CHAT_RATE_POST_SESSION", "10/10", "rate", "posts per session (or user)"),
    ChatSetting("CHAT_RATE_POST_ADDRESS", "30/10", "rate", "posts per client address"),
    ChatSetting("CHAT_RATE_ROOM_ADDRESS", "5/300", "rate", "rooms created per address"),
    ChatSetting("CHAT_RATE_NAME_SESSION", "5/60", "rate", "guest name changes per session"),
    ChatSetting("CHAT_RATE_TYPING_SESSION", "60/60", "rate",
                "typing signals per session (the page sends one every 2.5 s at most)"),
    ChatSetting("CHAT_RATE_TYPING_ADDRESS", "120/10", "rate",
                "typing signals per client address (a script with many sessions meets it; "
                "people behind one NAT typing at once do not)"),
    ChatSetting("CHAT_MAX_ROOMS_PER_USER", 20, "int",
                "rooms one account may own (a form error)", minimum=0),
    ChatSetting("CHAT_GUESTS", True, "flag", "guests may post (0: accounts only)"),
    ChatSetting("CHAT_GUEST_NAME_SECONDS", 24 * 3600.0, "float",
                "how long a guest name stays reserved after its session was last seen",
                minimum=0),
    ChatSetting("CHAT_POLL_TIMEOUT", 25.0, "float",
                "seconds an updates long-poll stays parked before it is answered empty",
                minimum=0.1),
    ChatSetting("CHAT_PRESENCE_SECONDS", 40.0, "float",
                "how recently a nick must have polled (or held a stream) to count as present",
                minimum=1),
    ChatSetting("CHAT_STREAM_LIFETIME", 300.0, "float",
                "seconds an event stream stays open before the page reconnects and "
                "resumes; also the length of its presence lease", minimum=1),
    ChatSetting("CHAT_STREAM_FIRST_EVENT_SECONDS", 5.0, "float",
                "how long a page waits for its stream's first event before it falls back "
                "to the long-poll (a proxy that buffers the stream)", minimum=0.1),
    ChatSetting("CHAT_WEBSOCKET", True, "flag",
                "pages try a WebSocket first, then the event stream, then the long-poll "
                "(0: they start with the event stream)"),
)
_BY_NAME = {spec.name: spec for spec in SETTINGS}


def value(name: str) -> Any:
    """The current value of setting ``name`` (Django's settings, else its default)."""
    return getattr(settings, name, _BY_NAME[name].default)


def from_environment(env: Env) -> dict[str, Any]:
    """Every setting from its environment variable (its default when unset), parsed and
    checked, for ``chatsite/settings.py`` to take in; ``env`` has the ``flag`` parser."""
    values = {}
    for spec in SETTINGS:
        read = getattr(env, "str" if spec.kind == "rate" else spec.kind)
        check = {} if spec.minimum is None else {"validate": validate.Range(min=spec.minimum)}
        values[spec.name] = read(spec.name, spec.default, **check)
        if spec.kind == "rate":
            try:
                parse_rate(spec.name, values[spec.name])
            except ValueError as exc:
                raise EnvError(str(exc)) from None
    return values


def markdown_table() -> str:
    """The README's table of the chat's settings."""
    rows = ["| setting | default | what |", "|---|---|---|"]
    rows += [f"| `{spec.name}` | `{spec.shown()}` | {spec.meaning} |" for spec in SETTINGS]
    return "\n".join(rows)


def _reader(name: str, kind: Callable[[Any], T]) -> Callable[[], T]:
    """A function that reads setting ``name`` (checked against the table) as ``kind``."""
    spec = _BY_NAME[name]
    return lambda: kind(value(spec.name))


poll_timeout = _reader("CHAT_POLL_TIMEOUT", float)
presence_seconds = _reader("CHAT_PRESENCE_SECONDS", float)
stream_lifetime = _reader("CHAT_STREAM_LIFETIME", float)
first_event_seconds = _reader("CHAT_STREAM_FIRST_EVENT_SECONDS", float)
guests_allowed = _reader("CHAT_GUESTS", bool)
guest_name_seconds = _reader("CHAT_GUEST_NAME_SECONDS", float)
max_rooms_per_user = _reader("CHAT_MAX_ROOMS_PER_USER", int)
websocket_enabled = _reader("CHAT_WEBSOCKET", bool)


# The rate limits by scope (see limits.py), each "COUNT/SECONDS".
RATES = {
    "post-session": "CHAT_RATE_POST_SESSION",
    "post-address": "CHAT_RATE_POST_ADDRESS",
    "room-address": "CHAT_RATE_ROOM_ADDRESS",
    "name-session": "CHAT_RATE_NAME_SESSION",
    "typing-session": "CHAT_RATE_TYPING_SESSION",
    "typing-address": "CHAT_RATE_TYPING_ADDRESS",
}


def parse_rate(name: str, text: str) -> tuple[int, float]:
    """``(count, seconds)`` of the rate ``text`` of setting ``name``; ValueError naming
    it when ``text`` is not ``COUNT/SECONDS`` with both positive."""
    count, _, seconds = str(text).partition("/")
    try:
        parsed = int(count), float(seconds)
    except ValueError:
        raise ValueError(f"{name} must look like COUNT/SECONDS, e.g. 10/10; got {text!r}") \
            from None
    if parsed[0] < 1 or parsed[1] <= 0:
        raise ValueError(f"{name}: COUNT and SECONDS must be positive; got {text!r}")
    return parsed


def rate(scope: str) -> tuple[int, float]:
    """``(count, seconds)`` of a rate limit: at most ``count`` per ``seconds``."""
    name = RATES[scope]
    return parse_rate(name, value(name))


# Limits of the HTTP API (part of the contract for other clients).
MAX_TEXT = 2000
MAX_NICK = 40
PAGE_SIZE = 50  # messages on page load and per "load older"
MAX_BATCH = 500  # messages per updates answer; the client asks again from the cursor

"""The text/event-stream format (WHATWG HTML, "Server-sent events"), no I/O.

A message is field lines ended by a blank line: ``id:``, ``event:``, one ``data:`` per
line of data, and ``retry:``; a line starting with ``:`` is a comment (our heartbeat).
The rules that matter to a client resuming after a drop:

- ``id:`` is written only on durable resume points (events with a cursor), never on
  signals or heartbeats: the browser sends the last id it saw as ``Last-Event-ID``
  when it reconnects, and an id on a frame that cannot be replayed would make it skip
  what came before;
- an id may not hold CR, LF or NUL (it would end the line, or be ignored);
- data is split on CR LF, CR and LF alike, each piece its own ``data:`` line; an
  event whose data is empty is not dispatched by browsers (the spec's rule).

This module knows nothing of HTTP, Django or libevent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FORBIDDEN_IN_FIELD = re.compile(r"[\r\n\x00]")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One message of an event stream: ``data`` (any text), an optional ``event``
    name (the client's ``addEventListener(name, ...)``; none means ``message``) and
    an optional ``id`` (a resume point: see the module docstring)."""

    data: str
    event: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, str):
            raise TypeError(f"event data must be str, not {type(self.data).__name__}")
        for name in ("event", "id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str)
                                      or _FORBIDDEN_IN_FIELD.search(value)):
                raise ValueError(f"an event's {name} must be a str without CR, LF or NUL: "
                                 f"{value!r}")

    def encode(self) -> bytes:
        """The message as it goes on the wire (UTF-8)."""
        lines = []
        if self.id is not None:
            lines.append(f"id: {self.id}\n")
        if self.event is not None:
            lines.append(f"event: {self.event}\n")
        for line in _LINE_BREAK.split(self.data):
            lines.append(f"data: {line}\n")
        lines.append("\n")
        return "".join(lines).encode()


def retry_field(milliseconds: int) -> bytes:
    """How long the client waits before it reconnects (sent first on every stream)."""
    if milliseconds < 0:
        raise ValueError("retry must be >= 0 ms")
    return b"retry: %d\n\n" % milliseconds


def comment(text: str = "") -> bytes:
    """A comment line: ignored by clients, but it keeps proxies and clients aware that
    the connection is alive (the heartbeat)."""
    if _FORBIDDEN_IN_FIELD.search(text):
        raise ValueError("a comment may not hold CR, LF or NUL")
    return f": {text}\n\n".encode() if text else b":\n\n"

"""Signal windows: coalescing signals (typing, presence) for parked long-polls.

A signal published with ``coalesce`` wakes the parked long-polls of a quiet channel at
once, then opens a window of ``seconds`` on it; the coalescing signals of the window
are held and wake the long-polls once, together, when it ends (and open the next
window).  Any other event wakes them at once, carrying the held signals with it.
Followers (event streams) get every event at once: a long-poll answered costs its
client a new request, a stream frame costs microseconds.  The hub calls ``hold`` and
``end`` under its lock, ``open`` outside it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from comet_server.push.events import Event

Timers = Callable[[float, Callable[[], None]], object]  # call_later(seconds, fn)
HELD_SIGNALS = 256  # signals a channel holds for its window at most (the latest kept)


class SignalWindows:
    """Per channel with an open window, the coalescing signals held until it ends."""

    def __init__(self) -> None:
        self.seconds = 0.0  # 0: off
        self._timers: Timers | None = None
        self._held: dict[str, deque[Event]] = {}

    def configure(self, seconds: float, call_later: Timers | None) -> None:
        """Windows of ``seconds`` timed by ``call_later`` (the loop that runs the
        wake-ups); 0 seconds or no ``call_later``: off."""
        self.seconds = seconds if call_later is not None else 0.0
        self._timers = call_later
        self._held.clear()

    def close_all(self) -> None:
        """Forget every window (their timers were another loop's)."""
        self._held.clear()

    def __len__(self) -> int:
        """How many channels have a window open."""
        return len(self._held)

    def hold(self, by_channel: dict[str, list[Event]]) -> tuple[dict[str, list[Event]],
                                                                list[str]]:
        """What of a dispatch wakes long-polls now, and the channels whose window
        opens: coalescing signals on a channel whose window is open are held; on a
        quiet channel they go now and a window opens; any other event goes now with
        the held ones before it."""
        now: dict[str, list[Event]] = {}
        opened: list[str] = []
        for channel, events in by_channel.items():
            held = self._held.get(channel)
            if all(event.coalesce for event in events):
                if held is None:
                    self._held[channel] = deque(maxlen=HELD_SIGNALS)
                    opened.append(channel)
                    now[channel] = events
                else:
                    held.extend(events)
            elif held:
                now[channel] = [*held, *events]
                held.clear()
            else:
                now[channel] = events
        return now, opened

    def open(self, channel: str, on_end: Callable[[str], None]) -> None:
        """Start ``channel``'s window: ``on_end(channel)`` once it is over."""
        timers = self._timers
        if timers is not None:
            timers(self.seconds, lambda: on_end(channel))

    def end(self, channel: str) -> list[Event] | None:
        """A window ended: the signals it held, to wake the long-polls now (the next
        window then opens); ``None``: the window closed (it held nothing, or the
        windows were reset meanwhile)."""
        held = self._held.get(channel)
        if held is None:
            return None
        if not held:
            del self._held[channel]
            return None
        events = list(held)
        held.clear()
        return events

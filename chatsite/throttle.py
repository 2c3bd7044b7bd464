"""A generic helper of the site (no Django, no chat): ``Throttle``, which lets a key
through at most once per interval in this process (the chat coalesces typing
signals with it)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class Throttle:
    """Lets a key through at most once per ``every`` seconds, in this process.

    Remembers when each key last went through, oldest first; keys older than ``every``
    are forgotten as new ones arrive, and at most ``max_keys`` are kept (past that the
    oldest is forgotten early: memory stays bounded whatever the traffic).
    """

    def __init__(self, every: float, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.max_keys = max_keys
        self.clock = clock
        self._last: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: Hashable) -> bool:
        """True when ``key`` may go through now (and remember that it did)."""
        now = self.clock()
        with self._lock:
            last = self._last
            while last:
                oldest_key, oldest = next(iter(last.items()))
                if now - oldest < self.every and len(last) < self.max_keys:
                    break
                del last[oldest_key]
            if key in last:
                return False
            last[key] = now
            return True

    def __len__(self) -> int:
        return len(self._last)

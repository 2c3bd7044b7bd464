"""What a suspended response waits for, and how it is driven without a comet server.

A *comet response* is a WSGI iterable with a ``comet_coroutine()`` method returning a
generator.  The generator yields ``bytes`` (body data) or a wait object (``Sleep``,
``WaitForEvents``).  The comet server parks the connection on a wait and resumes the
generator with ``send(outcome)`` when it resolves; no thread is held meanwhile.  Any
other WSGI server just iterates the response, and ``iterate_blocking`` then resolves
the same waits by blocking the calling thread, so views stay portable.

This module knows nothing of HTTP, Django or libevent.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from comet_server.hub import Event, Hub


@dataclass(frozen=True, slots=True)
class Sleep:
    """Resume after ``seconds``; the outcome is ``None``."""

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds >= 0:
            raise ValueError(f"Sleep needs seconds >= 0, got {self.seconds!r}")


@dataclass(frozen=True, slots=True)
class WaitForEvents:
    """Resume when events arrive on ``channels`` after cursor ``after``, or at ``timeout``.

    The outcome is a ``Delivery``; its ``events`` list is empty on timeout (and on
    server shutdown, so clients re-poll).
    """

    channels: tuple[str, ...]
    after: int | None
    timeout: float

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError("WaitForEvents needs at least one channel")
        if not self.timeout > 0:
            raise ValueError(f"WaitForEvents needs timeout > 0, got {self.timeout!r}")


Wait = Sleep | WaitForEvents


@dataclass(slots=True)
class Delivery:
    """Events handed to a waiter.

    ``memo`` is shared by every waiter woken by the same dispatch, so a renderer can
    serialise a batch once for thousands of waiters instead of once per waiter.
    """

    events: list[Event]
    memo: dict[Any, Any] = field(default_factory=dict)


CometCoroutine = Generator[bytes | Wait, Any, None]


def iterate_blocking(coroutine: CometCoroutine, hub: Hub) -> Iterator[bytes]:
    """Run a comet coroutine on the calling thread, blocking on each wait.

    Used when the response is served by a server without comet support (runserver,
    gunicorn, Django's test client).
    """
    outcome: Any = None
    try:
        while True:
            try:
                item = coroutine.send(outcome)
            except StopIteration:
                return
            outcome = None
            if isinstance(item, (bytes, bytearray, memoryview)):
                if item:
                    yield bytes(item)
            elif isinstance(item, Sleep):
                time.sleep(item.seconds)
            elif isinstance(item, WaitForEvents):
                outcome = hub.wait_blocking(item.channels, item.after, item.timeout)
            else:
                raise TypeError(f"a comet coroutine yielded {type(item).__name__}, "
                                "expected bytes, Sleep or WaitForEvents")
    finally:
        coroutine.close()

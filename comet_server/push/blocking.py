"""The blocking fallback: waits and event streams that hold the calling thread, for
servers without comet (runserver, gunicorn, Django's test client; see
``waits.iterate_blocking``).  Through the hub's broker when it has one (a subscription
of its own), else on the hub's own waiters and followers.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from comet_server.push.broker import Broker, Receiver
from comet_server.push.events import Delivery
from comet_server.push.matcher import top_cursor, wanted


class LocalHub(Receiver, Protocol):
    """What the fallback needs of the hub (``comet_server.push.hub.Hub``)."""

    broker: Broker | None

    def watch(self, channels: tuple[str, ...], after: int | None,
              wake: Callable[[Delivery], None]) -> Any: ...

    def cancel(self, watch: Any) -> None: ...

    def follow(self, channels: tuple[str, ...], after: int | None,
               deliver: Callable[[Delivery | None], None]) -> Any: ...

    def unfollow(self, follower: Any) -> None: ...


def wait_blocking(hub: LocalHub, channels: tuple[str, ...], after: int | None,
                  timeout: float) -> Delivery:
    """Block the calling thread until events past ``after`` or ``timeout``."""
    if hub.broker is not None:
        return hub.broker.wait_blocking(hub, channels, after, timeout)
    done = threading.Event()
    box: list[Delivery] = []

    def wake(delivery: Delivery) -> None:
        box.append(delivery)
        done.set()

    watch = hub.watch(channels, after, wake)
    if not done.wait(timeout):
        hub.cancel(watch)
    return box[0] if box else Delivery([])


def follow_blocking(hub: LocalHub, channels: tuple[str, ...], after: int | None,
                    heartbeat: float, duration: float) -> Iterator[Delivery]:
    """An event stream on the calling thread: every batch past ``after`` for
    ``duration`` seconds, and an empty ``Delivery`` after each ``heartbeat`` seconds
    without one.  One subscription for the whole stream, so nothing published between
    two batches is missed."""
    if hub.broker is not None:
        yield from hub.broker.follow_blocking(hub, channels, after, heartbeat, duration)
        return
    deadline = time.monotonic() + duration
    batches: deque[Delivery | None] = deque()
    arrived = threading.Event()

    def deliver(delivery: Delivery | None) -> None:
        batches.append(delivery)
        arrived.set()

    # Follow first, then read the history: an event published in between is in
    # both (and sent once), never in neither.
    follower = hub.follow(channels, after, deliver)
    try:
        seen = after
        history = hub.events_after(channels, after)
        if history:
            seen = top_cursor(history)
            yield Delivery(history)
        while (left := deadline - time.monotonic()) > 0:
            if not arrived.wait(min(heartbeat, left)):
                if left > heartbeat:  # a whole heartbeat of silence, not the end
                    yield Delivery([])
                continue
            arrived.clear()
            while batches:
                delivery = batches.popleft()
                if delivery is None:  # the hub may have missed events: end
                    return
                events = wanted(delivery.events, seen)
                seen = top_cursor(events) or seen
                if events:
                    yield Delivery(events, delivery.memo)
    finally:
        hub.unfollow(follower)

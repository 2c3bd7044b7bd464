"""The broker protocol: what carries events between processes (Redis, see
``comet_server.push.redis_broker``), and what it needs of the hub it feeds."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from comet_server.push.events import Delivery, Event

if TYPE_CHECKING:
    from comet_server.loop import EventLoop


class Receiver(Protocol):
    """The hub as a broker sees it (``comet_server.push.hub.Hub``)."""

    def receive(self, event: Event) -> None:
        """An event from another process enters this one."""

    def wake_all(self) -> None:
        """Events may have been missed (a reconnect): every waiter re-polls."""

    def events_after(self, channels: Iterable[str], after: int | None) -> list[Event]:
        """What the history of ``channels`` holds past ``after``."""


class Broker(Protocol):
    """Carries events between processes."""

    def send(self, event: Event) -> None: ...

    def attach(self, loop: EventLoop, hub: Receiver) -> None:
        """Receive on ``loop`` from now on, handing events to ``hub.receive``."""

    def wait_blocking(self, hub: Receiver, channels: tuple[str, ...], after: int | None,
                      timeout: float) -> Delivery: ...

    def follow_blocking(self, hub: Receiver, channels: tuple[str, ...], after: int | None,
                        heartbeat: float, duration: float) -> Iterator[Delivery]: ...

"""What a suspended response waits for, and how it is driven without a comet server.

A *comet response* is a WSGI iterable with a ``comet_coroutine()`` method returning a
generator.  The generator yields ``bytes`` (body data) or a wait object (``Sleep``,
``WaitForEvents``, ``FollowEvents``).  The comet server parks the connection on a
wait and resumes the generator with ``send(outcome)`` when it resolves; no thread is
held meanwhile.  Any other WSGI server just iterates the response, and
``iterate_blocking`` then resolves the same waits by blocking the calling thread, so
views stay portable.

This module knows nothing of HTTP, Django or libevent.
"""

from __future__ import annotations

import enum
import functools
import logging
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

# Defined with the hub's other types; importable from here too (CHANGELOG).
from comet_server.push.events import Delivery as Delivery
from comet_server.push.events import Event as Event

log = logging.getLogger(__name__)


class BlockingHub(Protocol):
    """What ``iterate_blocking`` needs of the hub (``comet_server.push.hub.Hub``)."""

    def wait_blocking(self, channels: tuple[str, ...], after: int | None,
                      timeout: float) -> Delivery: ...

    def follow_blocking(self, channels: tuple[str, ...], after: int | None,
                        heartbeat: float, duration: float) -> Iterator[Delivery]: ...


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


class StreamEnd(enum.Enum):
    """Why a ``FollowEvents`` wait ended: the outcome the coroutine gets."""

    LIFETIME = "lifetime"  # ``duration`` passed: the client reconnects (rebalancing)
    DRAIN = "drain"  # the server is stopping: the client reconnects elsewhere
    LOST = "lost"  # events may have been missed (broker reconnect): resume from the store


# What a stream does when its view does not say (the comet server's options
# --stream-lifetime and --stream-heartbeat default to these too).
STREAM_LIFETIME = 300.0  # seconds, less up to STREAM_LIFETIME_JITTER of it
STREAM_LIFETIME_JITTER = 0.1  # streams opened together do not all end together
STREAM_HEARTBEAT = 15.0  # seconds without a write before a ping


@dataclass(frozen=True, slots=True)
class FollowEvents:
    """Stream every event on ``channels`` past ``after`` for ``duration`` seconds
    (less up to ``STREAM_LIFETIME_JITTER`` of it).

    Each batch of events is written as the concatenation of ``frame(event)`` (the
    bytes an event becomes on the stream: made once per batch however many streams
    share it, so ``frame`` must be hashable, like a renderer); ``ping`` is written
    after each ``heartbeat`` seconds without a write.  ``None`` for either: the
    server's setting.  The outcome is a ``StreamEnd``.  Every channel must share one
    cursor sequence (the cursor moves past each batch).
    """

    channels: tuple[str, ...]
    after: int | None
    frame: Callable[[Event], bytes]
    duration: float | None = None
    heartbeat: float | None = None
    ping: bytes = b""

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError("FollowEvents needs at least one channel")
        for name in ("duration", "heartbeat"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"FollowEvents needs {name} > 0, got {value!r}")


Wait = Sleep | WaitForEvents | FollowEvents


class SocketHandle(Protocol):
    """One open WebSocket, as its ``on_message`` sees it.  Safe from any thread (the
    calls are carried to the loop); both do nothing once the socket is closing."""

    def send(self, message: str | bytes) -> None:
        """Send a message to this socket only (``str``: text, ``bytes``: binary)."""

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake with ``code``."""


@dataclass(frozen=True, slots=True)
class SocketPlan:
    """What a WebSocket does once its handshake is accepted: the server's half of
    a view's ``websocket(...)``.

    First the ``opening`` messages (text, UTF-8 bytes), then every event on
    ``channels`` past ``after`` as the message ``frame(event)`` (UTF-8 bytes, or
    ``b""`` to skip it): made once per batch and written, as the same frame bytes,
    to every socket the batch reaches, so ``frame`` must be hashable like a
    renderer.  Each message the client sends goes to ``on_message(handle, message)``
    (``str`` for text, ``bytes`` for binary) on the thread pool, one at a time per
    socket in the order received.  ``on_close(code)`` runs once at the end: the close
    code received or sent, ``None`` if the connection was lost without one.  After
    ``lifetime`` seconds (less up to 10%, as a stream's) the server closes with 1000
    and the client reconnects and resumes, as an event stream's client does.
    """

    channels: tuple[str, ...] = ()
    after: int | None = None
    frame: Callable[[Event], bytes] | None = None
    opening: tuple[bytes, ...] = ()
    on_message: Callable[[SocketHandle, str | bytes], object] | None = None
    on_close: Callable[[int | None], object] | None = None
    lifetime: float | None = None
    close: tuple[int, str] | None = None  # close with this once ``opening`` is out

    def __post_init__(self) -> None:
        if self.lifetime is not None and not self.lifetime > 0:
            raise ValueError(f"SocketPlan needs lifetime > 0, got {self.lifetime!r}")
        if self.channels and self.frame is None:
            raise ValueError("a SocketPlan that follows channels needs a frame function")


@dataclass(frozen=True, slots=True)
class Status:
    """Answer with this status line (``"403 Forbidden"``) instead of the one the view
    set: yielded before any body, when what a long-poll waited for turned out to be a
    refusal (a member removed while waiting).  The comet server sends it; under other
    servers the status has gone out already and ``iterate_blocking`` can only tell
    its ``on_status`` (Django's test client then sees it)."""

    line: str


def frame_all(frame: Callable[[Event], bytes], events: list[Event]) -> bytes:
    """The frames of ``events`` one after the other.  An event the application's
    ``frame`` fails on is left out (logged once per call): a stream does not die of
    one bad event, and a client resuming from before it is not refused for ever."""
    try:
        return b"".join(map(frame, events))
    except Exception:
        log.exception("error framing an event for the event streams: it is left out")
    parts = []
    for event in events:
        try:
            parts.append(frame(event))
        except Exception:
            continue
    return b"".join(parts)


CometCoroutine = Generator[bytes | Wait | Status, Any, None]


class CoroutineDriver:
    """Runs a comet coroutine up to its next wait: the one interpreter of what a
    coroutine may yield, used by the comet server and by ``iterate_blocking`` alike,
    so a view cannot work under one and fail under the other."""

    __slots__ = ("coroutine", "status")

    def __init__(self, coroutine: CometCoroutine) -> None:
        self.coroutine = coroutine
        self.status: Status | None = None  # a ``Status`` yielded, for the caller to apply

    def advance(self, outcome: Any, body: list[bytes]) -> Wait | None:
        """Send ``outcome`` in; append the body chunks it yields to ``body``; return the
        wait it stopped at, or ``None`` when it ended."""
        send = self.coroutine.send
        while True:
            try:
                item = send(outcome)
            except StopIteration:
                return None
            outcome = None
            if type(item) is bytes:
                if item:
                    body.append(item)
            elif isinstance(item, (bytes, bytearray, memoryview)):
                if item:
                    body.append(bytes(item))
            elif isinstance(item, (Sleep, WaitForEvents, FollowEvents)):
                return item
            elif isinstance(item, Status):
                if body:
                    raise RuntimeError("a comet coroutine yielded a Status after body data")
                self.status = item
            else:
                raise TypeError(f"a comet coroutine yielded {type(item).__name__}, "
                                "expected bytes, Sleep, WaitForEvents, FollowEvents or Status")

    def close(self) -> None:
        self.coroutine.close()


def iterate_blocking(coroutine: CometCoroutine, hub: BlockingHub,
                     on_status: Callable[[Status], None] | None = None) -> Iterator[bytes]:
    """Run a comet coroutine on the calling thread, blocking on each wait.

    Used when the response is served by a server without comet support (runserver,
    gunicorn, Django's test client).  A ``Status`` goes to ``on_status``.
    """
    driver = CoroutineDriver(coroutine)
    outcome: Any = None
    body: list[bytes] = []
    try:
        while True:
            wait = driver.advance(outcome, body)
            if driver.status is not None:
                if on_status is not None:
                    on_status(driver.status)
                driver.status = None
            yield from body
            body.clear()
            if wait is None:
                return
            if isinstance(wait, Sleep):
                time.sleep(wait.seconds)
                outcome = None
            elif isinstance(wait, FollowEvents):
                outcome = yield from _follow_blocking(wait, hub)
            else:
                outcome = hub.wait_blocking(wait.channels, wait.after, wait.timeout)
    finally:
        driver.close()


def _follow_blocking(wait: FollowEvents, hub: BlockingHub) -> Generator[bytes, None, StreamEnd]:
    """A stream on the calling thread: write each batch's frames, ping when idle,
    until ``duration`` passes (the thread is held all along)."""
    batches = hub.follow_blocking(wait.channels, wait.after, wait.heartbeat or STREAM_HEARTBEAT,
                                  wait.duration or STREAM_LIFETIME)
    for delivery in batches:
        if delivery.events:
            data = frame_all(wait.frame, delivery.events)
            if data:
                yield data
        elif wait.ping:
            yield wait.ping
    return StreamEnd.LIFETIME


_Wrapped = TypeVar("_Wrapped")


@functools.lru_cache(maxsize=4096)
def _shared(wrap: Callable[[Any], _Wrapped], render: Any) -> _Wrapped:
    return wrap(render)


def frame_function(wrap: Callable[[Any], _Wrapped], render: Any, api: str) -> _Wrapped:
    """``wrap(render)``, one object per renderer for the life of the process: the
    server memoises a batch's frames under the frame function, so every stream of one
    renderer shares them.  ``render`` must be hashable (``api`` names the caller in
    the error)."""
    try:
        return _shared(wrap, render)
    except TypeError:
        raise TypeError(f"{api}'s render must be hashable (a function, or an object "
                        "that compares and hashes by value)") from None

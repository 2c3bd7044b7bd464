"""Carry events between processes and machines through Redis pub/sub.

Publishing uses the regular ``redis`` client (works from any Django process: a view
under gunicorn, a management command, a Celery task).  Each comet server process
subscribes once (``PSUBSCRIBE <prefix>*``, one connection per process) on its own
libevent loop, non-blocking, parsing replies with hiredis' Reader, and hands every
event to its hub, which fans it out to local waiters.

If Redis goes away the subscriber reconnects with backoff; once back, every parked
waiter is answered empty so clients re-poll against the database, because events
published meanwhile were missed.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import hiredis
import redis

from comet_server.push.broker import Receiver
from comet_server.push.events import Delivery, Event

if TYPE_CHECKING:
    from comet_server.loop import EventLoop

log = logging.getLogger("comet_server.redis")

PREFIX = "comet:"
SUBSCRIBE_TIMEOUT = 5.0  # seconds Redis has to confirm a blocking wait's SUBSCRIBE


def _command(*parts: bytes | str) -> bytes:
    """A command in the Redis protocol (RESP) — writing it is trivial; parsing is hiredis'."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RedisBroker:
    """Publish through Redis; subscribe on the comet server's loop."""

    def __init__(self, url: str, prefix: str = PREFIX) -> None:
        self.url = url
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        parsed = urlparse(url)
        self.address = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        self.password = unquote(parsed.password) if parsed.password else None
        self.username = unquote(parsed.username) if parsed.username else None
        # subscriber state (only in a comet server process)
        self._loop: EventLoop | None = None
        self._hub: Receiver | None = None
        self._sock: socket.socket | None = None
        self._reader: Any = None
        self._stop_watch: Any = None
        self._backoff = 0.1
        self.connected = False
        self.reconnects = 0

    # -- publishing (any process, any thread) ---------------------------------------

    def send(self, event: Event) -> None:
        try:
            self.client.publish(self.prefix + event.channel, event.to_json())
        except redis.RedisError as exc:
            # The record is already stored; local waiters still wake, remote ones re-poll
            # at their timeout or when their subscriber reconnects.
            log.warning("publish to Redis failed (%s); delivering locally only", exc)
            if self._hub is not None:
                self._hub.receive(event)

    # -- subscribing on the comet server's loop -------------------------------------

    def attach(self, loop: EventLoop, hub: Receiver) -> None:
        """Start the subscriber on ``loop``; it feeds ``hub``."""
        self._loop, self._hub = loop, hub
        self._connect()

    def _connect(self) -> None:
        assert self._loop is not None
        sock = socket.socket(socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET)
        sock.setblocking(False)
        err = sock.connect_ex(self.address)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self._retry(f"connect: {errno.errorcode.get(err, err)}")
            return
        self._sock = sock
        self._stop_watch = self._loop.when_writable(sock.fileno(), self._on_connected)

    def _on_connected(self) -> None:
        sock = self._sock
        assert sock is not None and self._loop is not None
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._drop(f"connect: {errno.errorcode.get(err, err)}")
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hello = b""
        if self.password:
            auth = (self.username, self.password) if self.username else (self.password,)
            hello += _command("AUTH", *auth)
        hello += _command("PSUBSCRIBE", self.prefix + "*")
        try:
            sock.sendall(hello)  # tiny: fits the empty send buffer of a new socket
        except OSError as exc:
            self._drop(f"send: {exc}")
            return
        self._reader = hiredis.Reader()
        self._stop_watch = self._loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._drop(f"recv: {exc}")
            return
        if not data:
            self._drop("connection closed by Redis")
            return
        self._reader.feed(data)
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:
                self._drop(f"protocol error: {exc}")
                return
            if reply is False:
                break
            self._on_reply(reply)

    def _on_reply(self, reply: Any) -> None:
        if isinstance(reply, hiredis.ReplyError):
            log.error("Redis refused the subscription: %s", reply)
            self._drop(str(reply))
            return
        if not isinstance(reply, list) or not reply:
            return  # +OK of AUTH
        kind = reply[0]
        if kind == b"pmessage":
            try:
                event = Event.from_json(reply[3])
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring a malformed event on %r", reply[2])
                return
            assert self._hub is not None
            self._hub.receive(event)
        elif kind == b"psubscribe":
            was_reconnect = self.reconnects > 0
            self.connected = True
            self._backoff = 0.1
            log.info("subscribed to Redis %s:%d (%s*)", *self.address, self.prefix)
            if was_reconnect and self._hub is not None:
                # Events published while we were away were missed: let clients re-poll.
                self._hub.wake_all()

    def _drop(self, why: str) -> None:
        self.close()
        self._retry(why)

    def _retry(self, why: str) -> None:
        if self.connected or self.reconnects == 0:
            log.warning("Redis subscription lost (%s); reconnecting", why)
        self.connected = False
        self.reconnects += 1
        delay, self._backoff = self._backoff, min(self._backoff * 2, 5.0)
        assert self._loop is not None
        self._loop.call_later(delay, self._connect)

    def close(self) -> None:
        """Close the subscription (no reconnect is scheduled by this)."""
        if self._stop_watch is not None:
            self._stop_watch()
            self._stop_watch = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- waiting without a comet server (gunicorn, runserver, tests) ----------------

    def _subscribe_blocking(self, channels: tuple[str, ...]) -> tuple[Any, list[Event]]:
        """A subscription of our own to ``channels``, returned once Redis confirmed it
        (so everything published from then on reaches it), with the events that came
        before the last confirmation."""
        pubsub = self.client.pubsub()
        try:
            names = [self.prefix + c for c in channels]
            pubsub.subscribe(*names)
            pending = {name.encode() for name in names}
            early: list[Event] = []
            deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise redis.TimeoutError("no confirmation of SUBSCRIBE")
                message = pubsub.get_message(timeout=left)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    pending.discard(message["channel"])
                elif message["type"] == "message":
                    early.append(Event.from_json(message["data"]))
        except BaseException:
            pubsub.close()
            raise
        return pubsub, early

    def follow_blocking(self, hub: Receiver, channels: tuple[str, ...], after: int | None,
                        heartbeat: float, duration: float) -> Iterator[Delivery]:
        """An event stream on one subscription of our own (see ``Hub.follow_blocking``);
        ends early if Redis fails (the client resumes from its last id)."""
        pubsub = None
        try:
            # Subscribed first, then the history: an event published in between is in
            # both (and sent once, by cursor), never in neither.
            pubsub, early = self._subscribe_blocking(channels)
            ready = hub.events_after(channels, after)
            if ready:
                after = max(e.cursor for e in ready if e.cursor is not None)
                yield Delivery(ready)
            deadline = time.monotonic() + duration
            quiet_since = time.monotonic()
            while (left := deadline - time.monotonic()) > 0:
                events: list[Event] = []
                incoming = early or self._messages(pubsub, min(heartbeat, left))
                early = []
                for event in incoming:
                    if after is None or event.cursor is None or event.cursor > after:
                        events.append(event)
                        if event.cursor is not None:
                            after = event.cursor
                now = time.monotonic()
                if events or (now - quiet_since >= heartbeat and now < deadline):
                    quiet_since = now  # a batch, or a whole heartbeat of silence
                    yield Delivery(events)
        except redis.RedisError as exc:
            log.warning("streaming from Redis failed (%s); ending the stream", exc)
        finally:
            if pubsub is not None:
                pubsub.close()

    @staticmethod
    def _messages(pubsub: Any, timeout: float) -> list[Event]:
        """The events that arrive within ``timeout`` (all of them once one came)."""
        events: list[Event] = []
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        while message is not None:
            if message.get("type") == "message":
                events.append(Event.from_json(message["data"]))
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
        return events

    def wait_blocking(self, hub: Receiver, channels: tuple[str, ...], after: int | None,
                      timeout: float) -> Delivery:
        """Block on a short-lived subscription of our own until an event or timeout.

        Subscribed first, then the history (as ``follow_blocking``): an event published
        in between is in one or both, and answered once."""
        pubsub = None
        try:
            pubsub, early = self._subscribe_blocking(channels)
            ready = hub.events_after(channels, after)
            if ready:
                return Delivery(ready)
            deadline = time.monotonic() + timeout
            while True:
                for event in early:
                    if after is None or event.cursor is None or event.cursor > after:
                        return Delivery([event])
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                early = self._messages(pubsub, left)
        except redis.RedisError as exc:
            log.warning("waiting on Redis failed (%s); answering empty", exc)
        finally:
            if pubsub is not None:
                pubsub.close()
        return Delivery([])

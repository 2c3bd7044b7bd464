"""The event hub of a process: channels, a short history per channel, the waiters to
wake and the followers to feed, and the dispatch of what is published to them.

``publish`` records an event and wakes every waiter on its channel whose cursor is
behind it (a long-poll: woken once), and hands it to every follower whose cursor is
behind it (an event stream: every batch, in the order the events arrived).  Inside
the comet server the wake-up runs on the event loop (the server installs a
scheduler) in slices (``slicer``); elsewhere it runs at once on the publishing thread
and wakes threads blocked in ``wait_blocking`` (``blocking``).  A broker (Redis) may
carry events between processes; it hands what it receives to ``receive``.

The history is a short buffer that closes the gap between "I looked" and "I wait";
the durable record of an application (its database) stays the source of truth.
This module knows nothing of HTTP, Django or libevent.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

from comet_server.push import blocking
from comet_server.push.broker import Broker
from comet_server.push.events import Delivery
from comet_server.push.events import Event as Event  # importable from here too (CHANGELOG)
from comet_server.push.matcher import match, top_cursor
from comet_server.push.signals import SignalWindows, Timers
from comet_server.push.slicer import Batch, FanOut, Scheduler, Slicer


class Watch:
    """A registered waiter; pass it to ``Hub.cancel`` to stop waiting.

    ``wake`` is called once, never from inside ``Hub.watch`` and never while the hub
    holds its lock; ``None`` once woken or cancelled.
    """

    __slots__ = ("channels", "after", "wake", "active")

    def __init__(self, channels: tuple[str, ...], after: int | None,
                 wake: Callable[[Delivery], None]) -> None:
        self.channels = channels
        self.after = after
        self.wake: Callable[[Delivery], None] | None = wake
        self.active = False  # registered in the hub's waiter sets

    def take(self) -> Callable[[Delivery], None] | None:
        """Its wake-up, once: a waiter is woken at most once."""
        wake, self.wake = self.wake, None
        return wake


class Follower:
    """A standing subscription (an event stream); pass it to ``Hub.unfollow`` to stop.

    ``deliver(delivery)`` is called with every batch of events past the follower's
    cursor, in the order they were received, never from inside ``Hub.follow`` and
    never under the hub's lock; the hub moves ``after`` past each batch as it matches
    it.  ``deliver(None)`` says the hub may have missed events (a broker reconnect):
    the follower is dropped and its stream should end, so its client resumes from the
    application's durable store.  ``deliver`` is ``None`` once unfollowed.
    """

    __slots__ = ("channels", "after", "deliver")

    def __init__(self, channels: tuple[str, ...], after: int | None,
                 deliver: Callable[[Delivery | None], None]) -> None:
        self.channels = channels
        self.after = after
        self.deliver: Callable[[Delivery | None], None] | None = deliver

    def take(self) -> Callable[[Delivery | None], None] | None:
        """Its ``deliver``, for every batch until unfollowed."""
        return self.deliver


class Hub:
    """Channels and their waiters, for one process."""

    def __init__(self, history: int = 256, broker: Broker | None = None) -> None:
        self._history_len = history
        self._history: dict[str, deque[Event]] = {}
        self._waiters: dict[str, set[Watch]] = {}
        self._followers: dict[str, set[Follower]] = {}
        self._pending: list[Event] = []
        self._pending_since = 0.0
        self._lock = threading.RLock()
        self._scheduler: Scheduler | None = None
        self._dispatch_scheduled = False
        self._slicer = Slicer(self._lock)
        self._windows = SignalWindows()
        self.broker = broker
        self.published_total = 0

    @property
    def delivered_total(self) -> int:
        """Waiters woken with events, and batches handed to followers (not timeouts,
        not wake_all, not a follower's "you missed events")."""
        return self._slicer.delivered_total

    @property
    def on_fanout(self) -> Callable[[float], None] | None:
        """Told the seconds from an event's arrival to the last waiter it woke (the
        server's fan-out histogram): once for a dispatch's waiters, once per group of
        followers in step (``slicer.FanOut``), never per waiter."""
        return self._slicer.on_fanout

    @on_fanout.setter
    def on_fanout(self, observe: Callable[[float], None] | None) -> None:
        self._slicer.on_fanout = observe

    # -- configuration -------------------------------------------------------------

    def set_scheduler(self, scheduler: Scheduler | None,
                      after_io: Scheduler | None = None) -> None:
        """Run wake-ups through ``scheduler`` (the comet server's loop) from now on.

        ``after_io`` runs a function at the loop's next turn, after pending writes:
        a large fan-out is woken slice by slice through it.
        """
        with self._lock:
            self._scheduler = scheduler
            self._slicer.set_after_io(after_io or scheduler)
            self._dispatch_scheduled = False
            self._windows.close_all()  # their timers were the old loop's

    def set_signal_window(self, seconds: float, call_later: Timers | None) -> None:
        """Coalesce signals for long-polls (see ``comet_server.push.signals``):
        ``call_later(seconds, fn)`` runs on the loop that runs the wake-ups; 0 seconds
        or no ``call_later``: off."""
        with self._lock:
            self._windows.configure(seconds, call_later)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` at the server loop's next turn, or at once without a server."""
        scheduler = self._scheduler
        if scheduler is None:
            fn()
        else:
            scheduler(fn)

    # -- publishing ----------------------------------------------------------------

    def publish(self, channel: str, payload: Any = None, cursor: int | None = None, *,
                coalesce: bool = False) -> Event:
        """Publish ``payload`` on ``channel``; through the broker when there is one.
        ``coalesce``: a signal (no cursor) whose wake-up of parked long-polls may wait
        for the signal window (typing, presence), see ``set_signal_window``."""
        if not isinstance(channel, str) or not channel:
            raise ValueError("channel must be a non-empty string")
        if cursor is not None and not isinstance(cursor, int):
            raise TypeError("cursor must be an int or None")
        if coalesce and cursor is not None:
            raise ValueError("only a signal (no cursor) may coalesce")
        event = Event(channel, payload, cursor, coalesce)
        event.to_json()  # fail here, in the publisher, if the payload is not JSON-able
        self.published_total += 1
        if self.broker is not None:
            self.broker.send(event)
        else:
            self.receive(event)
        return event

    def reaches_nobody(self, channel: str) -> bool:
        """Whether a publish on ``channel`` would reach no one: no broker, no server
        in this process, no waiter here on it."""
        with self._lock:
            return (self.broker is None and self._scheduler is None
                    and not self._waiters.get(channel))

    def receive(self, event: Event) -> None:
        """An event enters this process (from ``publish`` or the broker): remember it
        and wake its waiters (on the loop's next turn when a server runs)."""
        with self._lock:
            if event.cursor is not None:
                history = self._history.get(event.channel)
                if history is None:
                    history = self._history[event.channel] = deque(maxlen=self._history_len)
                history.append(event)
            if not self._pending:
                self._pending_since = time.perf_counter()
            self._pending.append(event)
            scheduler = self._scheduler
            if scheduler is not None:
                if self._dispatch_scheduled:
                    return
                self._dispatch_scheduled = True
        if scheduler is None:
            self._dispatch()
        else:
            scheduler(self._dispatch)

    def _dispatch(self) -> None:
        """Match pending events to followers and waiters under the lock, then hand
        them out outside it."""
        with self._lock:
            self._dispatch_scheduled = False
            since = self._pending_since
            pending, self._pending = self._pending, []
            if not pending:
                return
            by_channel: dict[str, list[Event]] = {}
            for event in pending:
                by_channel.setdefault(event.channel, []).append(event)
            memo: dict[Any, Any] = {}
            jobs = self._match_followers(by_channel, memo, since) if self._followers else []
            opened: list[str] = []
            if self._windows.seconds > 0 and self._scheduler is not None:
                by_channel, opened = self._windows.hold(by_channel)
            jobs.extend(self._match_waiters(by_channel, memo, since))
            start = self._slicer.queue(jobs)
        for channel in opened:
            self._windows.open(channel, self._end_window)
        if start:
            self._slicer.run()

    def _end_window(self, channel: str) -> None:
        """A channel's signal window ended: its held signals wake its long-polls,
        together, and the next window opens."""
        with self._lock:
            events = self._windows.end(channel)
            if events is None:
                return
            start = self._slicer.queue(
                self._match_waiters({channel: events}, {}, time.perf_counter()))
        self._windows.open(channel, self._end_window)
        if start:
            self._slicer.run()

    def _match_followers(self, by_channel: dict[str, list[Event]], memo: dict[Any, Any],
                         since: float) -> list[Batch]:
        """The batches of a dispatch for followers (one per group that wants the same
        events: one Delivery, so a frame is made once), and their cursors moved."""
        jobs: list[Batch] = []
        moves: list[tuple[tuple[Follower, ...], int]] = []
        for channel, events in by_channel.items():
            followers = tuple(self._followers.get(channel, ()))
            if not followers:
                continue
            for wanted, group in match(followers, events):
                jobs.append(Batch(group, Delivery(wanted, memo), FanOut(since), log_errors=True))
            top = top_cursor(events)
            if top is not None:
                moves.append((followers, top))
        # Cursors move once every channel is matched: a follower of several channels
        # is matched against the cursor it had before this dispatch on each of them.
        for movers, top in moves:
            for follower in movers:
                if follower.after is None or follower.after < top:
                    follower.after = top
        return jobs

    def _match_waiters(self, by_channel: dict[str, list[Event]], memo: dict[Any, Any],
                       since: float) -> list[Batch]:
        """The waiters woken by a dispatch, taken out of the hub: a job per delivery,
        timed together."""
        woken: dict[Watch, list[Event]] = {}
        for channel, events in by_channel.items():
            for wanted, group in match(tuple(self._waiters.get(channel, ())), events):
                for watch in group:
                    earlier = woken.get(watch)
                    woken[watch] = wanted if earlier is None else earlier + wanted
        if not woken:
            return []
        # Waiters with the same channels and events share one Delivery (what it holds
        # does not depend on their cursors), so a renderer that memoises on it does its
        # work once for all of them.
        shared: dict[Any, tuple[Delivery, list[Watch]]] = {}
        for watch, events in woken.items():
            self._remove(watch)
            key: Hashable
            if len(watch.channels) == 1:
                key = (watch.channels, id(events))  # the list shared per channel/cursor
            else:
                key = (watch.channels, tuple(id(e) for e in events))
            entry = shared.get(key)
            if entry is None:
                entry = shared[key] = (Delivery(events, memo), [])
            entry[1].append(watch)
        fanout = FanOut(since)
        return [Batch(watches, delivery, fanout) for delivery, watches in shared.values()]

    # -- waiting -------------------------------------------------------------------

    def events_after(self, channels: Iterable[str], after: int | None) -> list[Event]:
        """Events still in the history of ``channels`` with a cursor past ``after``."""
        if after is None:
            return []
        found: list[Event] = []
        with self._lock:
            for channel in channels:
                # The history holds only events with a cursor.
                found.extend(e for e in self._history.get(channel, ())
                             if e.cursor is not None and e.cursor > after)
        found.sort(key=lambda e: e.cursor or 0)
        return found

    def watch(self, channels: tuple[str, ...], after: int | None,
              wake: Callable[[Delivery], None]) -> Watch:
        """Call ``wake`` once when events past ``after`` arrive on ``channels``.

        Never calls back from inside: when the history already holds such events the
        wake-up is scheduled (the loop's next turn; without a server, on this thread
        once the hub's lock is released), as any other wake-up is.
        """
        watch = Watch(channels, after, wake)
        with self._lock:
            ready = self.events_after(channels, after)
            if not ready:
                watch.active = True
                _register(self._waiters, watch, channels)
                return watch
            start = self._slicer.queue([Batch([watch], Delivery(ready))])
        if start:
            self.call_soon(self._slicer.run)
        return watch

    def cancel(self, watch: Watch | None) -> None:
        """Stop waiting (timeout, disconnect); harmless if already woken.

        Also stops a wake-up that is scheduled or queued for a later slice.
        """
        if watch is None:
            return
        watch.wake = None
        if watch.active:
            with self._lock:
                self._remove(watch)

    def _remove(self, watch: Watch) -> None:
        watch.active = False
        _unregister(self._waiters, watch, watch.channels)

    def follow(self, channels: tuple[str, ...], after: int | None,
               deliver: Callable[[Delivery | None], None]) -> Follower:
        """Call ``deliver`` with every batch of events past ``after`` on ``channels``
        from now on (see ``Follower``).  Events already in the history are the
        caller's to send first (``events_after``): follow from the last of them."""
        follower = Follower(channels, after, deliver)
        with self._lock:
            _register(self._followers, follower, channels)
        return follower

    def unfollow(self, follower: Follower | None) -> None:
        """Stop a follower; harmless if already stopped.  Batches already queued for
        it are dropped."""
        if follower is None or follower.deliver is None:
            return
        follower.deliver = None
        with self._lock:
            _unregister(self._followers, follower, follower.channels)

    def following(self) -> int:
        """How many followers (open event streams) there are."""
        with self._lock:
            return len({f for followers in self._followers.values() for f in followers})

    def wake_all(self) -> None:
        """Answer every waiter with no events (shutdown, broker reconnect): they re-poll;
        tell every follower it may have missed events (``deliver(None)``), after the
        batches already queued for it.

        All share one empty ``Delivery``.  With a scheduler they are woken on the loop
        in slices, as a publish's waiters are; without one, at once.
        """
        with self._lock:
            watches = {w for waiters in self._waiters.values() for w in waiters}
            for watch in watches:
                self._remove(watch)
            lost = {f for followers in self._followers.values() for f in followers}
            for follower in lost:
                _unregister(self._followers, follower, follower.channels)
            jobs = []
            if lost:  # their streams end and their clients resume from the durable store
                jobs.append(Batch(list(lost), None, log_errors=True))
            if watches:
                jobs.append(Batch(list(watches), Delivery([])))
            start = self._slicer.queue(jobs)
        if start:
            self.call_soon(self._slicer.run)

    def signal_windows(self) -> int:
        """How many channels have a signal window open (see ``set_signal_window``)."""
        with self._lock:
            return len(self._windows)

    def waiting(self) -> int:
        with self._lock:
            return len({w for waiters in self._waiters.values() for w in waiters})

    def wait_blocking(self, channels: tuple[str, ...], after: int | None,
                      timeout: float) -> Delivery:
        """Block the calling thread until events or timeout (servers without comet)."""
        return blocking.wait_blocking(self, channels, after, timeout)

    def follow_blocking(self, channels: tuple[str, ...], after: int | None,
                        heartbeat: float, duration: float) -> Iterator[Delivery]:
        """An event stream on the calling thread (servers without comet)."""
        return blocking.follow_blocking(self, channels, after, heartbeat, duration)


def _register(table: dict[str, set[Any]], item: Any, channels: tuple[str, ...]) -> None:
    """Add ``item`` to the set of each of ``channels`` in ``table``."""
    for channel in channels:
        members = table.get(channel)
        if members is None:
            members = table[channel] = set()
        members.add(item)


def _unregister(table: dict[str, set[Any]], item: Any, channels: tuple[str, ...]) -> None:
    """Take ``item`` out of each channel's set; a channel left empty goes."""
    for channel in channels:
        members = table.get(channel)
        if members is not None:
            members.discard(item)
            if not members:
                del table[channel]

"""The event hub: channels, a short history per channel, waiters to wake, followers.

``publish`` records an event and wakes every waiter on its channel whose cursor is
behind it (a long-poll: woken once), and hands it to every follower whose cursor is
behind it (an event stream: every batch, in the order the events arrived).  Inside
the comet server the wake-up runs on the event loop (the server installs a
scheduler); elsewhere it runs at once on the publishing thread and wakes threads
blocked in ``wait_blocking``.  A broker (Redis) may carry events between
processes; it hands what it receives to ``deliver``.

A large fan-out is woken in slices, one per loop turn: a slice ends after about
``FAN_OUT_SLICE_SECONDS`` of work (renders included) or ``FAN_OUT_SLICE`` waiters,
whichever comes first, so one publish cannot keep the loop from other requests
however much each answer costs.  ``wake_all`` goes through the same slices.

The history is a short buffer that closes the gap between "I looked" and "I wait";
the durable record of an application (its database) stays the source of truth.
This module knows nothing of HTTP, Django or libevent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

# Event lives beside the waits (what a response waits for); it is public here too.
from comet_server.push.waits import Delivery
from comet_server.push.waits import Event as Event

if TYPE_CHECKING:
    from comet_server.loop import EventLoop

log = logging.getLogger(__name__)

Scheduler = Callable[[Callable[[], None]], object]
Timers = Callable[[float, Callable[[], None]], object]  # call_later(seconds, fn)
HELD_SIGNALS = 256  # signals a channel holds for its window at most (the latest kept)
FAN_OUT_SLICE = 500  # at most this many waiters woken per loop turn...
FAN_OUT_SLICE_SECONDS = 0.02  # ...and no more once a slice has worked this long


class Broker(Protocol):
    """Carries events between processes (see ``comet_server.push.redis_broker``)."""

    def send(self, event: Event) -> None: ...

    def attach(self, loop: EventLoop, hub: Hub) -> None:
        """Receive on ``loop`` from now on, handing events to ``hub.receive``."""

    def wait_blocking(self, hub: Hub, channels: tuple[str, ...], after: int | None,
                      timeout: float) -> Delivery: ...

    def follow_blocking(self, hub: Hub, channels: tuple[str, ...], after: int | None,
                        heartbeat: float, duration: float) -> Iterator[Delivery]: ...


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


# A batch for some followers: [followers, the delivery (None: lost), next index,
# when its events arrived (0.0: not timed)].
_FollowJob = list[Any]


def _wanted(events: Iterable[Event], after: int | None) -> list[Event]:
    if after is None:
        return list(events)
    return [e for e in events if e.cursor is None or e.cursor > after]


class Hub:
    """Channels and their waiters, for one process."""

    def __init__(self, history: int = 256, broker: Broker | None = None) -> None:
        self._history_len = history
        self._history: dict[str, deque[Event]] = {}
        self._waiters: dict[str, set[Watch]] = {}
        self._followers: dict[str, set[Follower]] = {}
        self._follow_jobs: deque[_FollowJob] = deque()
        self._following_out = False  # a fan-out to followers is under way
        self._pending: list[Event] = []
        self._lock = threading.RLock()
        self._scheduler: Scheduler | None = None
        self._after_io: Scheduler | None = None
        self._dispatch_scheduled = False
        self.broker = broker
        self.published_total = 0
        # Waiters woken with events, and batches handed to followers (not timeouts,
        # not wake_all, not a follower's "you missed events").
        self.delivered_total = 0
        # Told the seconds from an event's arrival to the last waiter it woke (the
        # server's fan-out histogram); once per fan-out, never per waiter.
        self.on_fanout: Callable[[float], None] | None = None
        self._pending_since = 0.0
        # Signal windows (set_signal_window): per channel with an open window, the
        # coalescing signals held for its parked long-polls until the window ends.
        self._signal_window = 0.0
        self._timers: Timers | None = None
        self._held: dict[str, deque[Event]] = {}

    # -- configuration -------------------------------------------------------------

    def set_scheduler(self, scheduler: Scheduler | None,
                      after_io: Scheduler | None = None) -> None:
        """Run wake-ups through ``scheduler`` (the comet server's loop) from now on.

        ``after_io`` runs a function at the loop's next turn, after pending writes:
        a large fan-out is woken slice by slice through it.
        """
        with self._lock:
            self._scheduler = scheduler
            self._after_io = after_io or scheduler
            self._dispatch_scheduled = False
            self._held.clear()  # their timers were the old loop's

    def set_signal_window(self, seconds: float, call_later: Timers | None) -> None:
        """Coalesce signals for long-polls: a signal published with ``coalesce`` wakes
        the parked long-polls of a quiet channel at once, then opens a window of
        ``seconds`` on it; the coalescing signals of the window are held and wake the
        long-polls once, together, when it ends (and open the next window).  Any other
        event wakes them at once, carrying the held signals with it.  Followers (event
        streams) get every event at once.  A long-poll answered costs its client a new
        request; a stream frame costs microseconds.  ``call_later(seconds, fn)`` runs
        on the loop that runs the wake-ups; 0 seconds or no ``call_later``: off."""
        with self._lock:
            self._signal_window = seconds if call_later is not None else 0.0
            self._timers = call_later
            self._held.clear()

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
        """Match pending events to waiters under the lock, then wake them outside it."""
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
            jobs = self._match_followers(by_channel, memo) if self._followers else []
            for job in jobs:
                job.append(since)  # for the fan-out histogram once the batch is out
            hand_out = self._queue_follow(jobs) if jobs else False
            opened: list[str] = []
            if self._signal_window > 0 and self._scheduler is not None:
                by_channel = self._hold_signals(by_channel, opened)
            ready = self._match_pending(by_channel, memo) if by_channel else []
        for channel in opened:
            self._open_window(channel)
        if hand_out:
            self._follow_slice()
        if ready:
            self._wake_slice(ready, 0, since)

    def _hold_signals(self, by_channel: dict[str, list[Event]],
                      opened: list[str]) -> dict[str, list[Event]]:
        """What of this dispatch wakes long-polls now (under the lock): coalescing
        signals on a channel whose window is open are held; on a quiet channel they
        go now and a window opens (its channel is added to ``opened``); any other
        event goes now with the held ones before it."""
        now: dict[str, list[Event]] = {}
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
        return now

    def _open_window(self, channel: str) -> None:
        timers = self._timers
        if timers is not None:
            timers(self._signal_window, lambda: self._end_window(channel))

    def _end_window(self, channel: str) -> None:
        """A channel's window ended: its held signals wake its long-polls, together,
        and the next window opens; a window that held nothing closes."""
        with self._lock:
            held = self._held.get(channel)
            if held is None:
                return  # closed meanwhile (set_scheduler, set_signal_window)
            if not held:
                del self._held[channel]
                return
            events = list(held)
            held.clear()
            ready = self._match_pending({channel: events}, {})
        self._open_window(channel)
        if ready:
            self._wake_slice(ready, 0, time.perf_counter())

    def _match_followers(self, by_channel: dict[str, list[Event]],
                         memo: dict[Any, Any]) -> list[_FollowJob]:
        """The batches of this dispatch for followers, and their cursors moved past them.

        Followers behind every cursored event (the usual case: streams are caught up)
        share one events list and one Delivery per channel, so a frame is made once.
        """
        jobs: list[_FollowJob] = []
        moves: list[tuple[Sequence[Follower], int]] = []
        for channel, events in by_channel.items():
            followers = self._followers.get(channel)
            if not followers:
                continue
            cursors = [e.cursor for e in events if e.cursor is not None]
            lowest = min(cursors) if cursors else None
            everyone: list[Follower] = []
            behind: dict[int, list[Follower]] = {}
            for follower in followers:
                after = follower.after
                if after is None or lowest is None or after < lowest:
                    everyone.append(follower)
                else:
                    group = behind.get(after)
                    if group is None:
                        group = behind[after] = []
                    group.append(follower)
            if everyone:
                jobs.append([everyone, Delivery(events, memo), 0])
            for after, group in behind.items():
                wanted = _wanted(events, after)
                if wanted:
                    jobs.append([group, Delivery(wanted, memo), 0])
            if cursors:
                top = max(cursors)
                moves.append((everyone, top))
                moves.extend((group, top) for group in behind.values())
        # Cursors move once every channel is matched: a follower of several channels
        # is matched against the cursor it had before this dispatch on each of them.
        for movers, top in moves:
            for follower in movers:
                if follower.after is None or follower.after < top:
                    follower.after = top
        return jobs

    def _queue_follow(self, jobs: list[_FollowJob]) -> bool:
        """Queue batches for followers in the order they were matched (one queue for
        all dispatches, so a follower never gets a later batch before an earlier);
        call under the lock, in the same hold as the matching.  True: the caller
        starts the hand-out (``_follow_slice``) once it released the lock."""
        self._follow_jobs.extend(jobs)
        if self._following_out:
            return False
        self._following_out = True
        return True

    def _follow_slice(self) -> None:
        """Deliver queued batches for about ``FAN_OUT_SLICE_SECONDS``, then yield to
        the loop (the rest goes on at its next turn).  Without a scheduler, all now,
        by whichever publishing thread started it (one at a time, in order)."""
        jobs = self._follow_jobs
        deadline = (None if self._scheduler is None
                    else time.perf_counter() + FAN_OUT_SLICE_SECONDS)
        handed = 0  # batches with events handed over (delivered_total)
        try:
            while True:
                with self._lock:
                    if not jobs:
                        self._following_out = False
                        return
                    job = jobs[0]
                followers, delivery, index, since = job
                count = len(followers)
                while index < count:
                    deliver = followers[index].deliver
                    index += 1
                    if deliver is not None:
                        handed += delivery is not None
                        try:
                            deliver(delivery)
                        except Exception:
                            log.exception("error delivering to an event stream")
                    if deadline is not None and not index & 63 \
                            and time.perf_counter() >= deadline and index < count:
                        job[2] = index
                        self._continue_follow()
                        return
                with self._lock:
                    jobs.popleft()
                if since and self.on_fanout is not None:
                    self.on_fanout(time.perf_counter() - since)
                if deadline is not None and time.perf_counter() >= deadline:
                    self._continue_follow()
                    return
        finally:
            self.delivered_total += handed

    def _continue_follow(self) -> None:
        after_io = self._after_io
        if after_io is None:
            self._follow_slice()
        else:
            after_io(self._follow_slice)

    def _match_pending(self, by_channel: dict[str, list[Event]],
                       memo: dict[Any, Any]) -> list[tuple[Watch, Delivery]]:
        woken: dict[Watch, list[Event]] = {}
        for channel, events in by_channel.items():
            by_after: dict[int | None, list[Event]] = {}
            # A waiter behind every cursored event (or woken by signals only) wants them
            # all: the common cases (a signal, a new message) cost no list per cursor.
            cursors = [e.cursor for e in events if e.cursor is not None]
            lowest = min(cursors) if cursors else None
            for watch in tuple(self._waiters.get(channel, ())):
                after = watch.after
                wanted: list[Event] | None = events
                if after is not None and lowest is not None and after >= lowest:
                    wanted = by_after.get(after)
                    if wanted is None:
                        wanted = by_after[after] = _wanted(events, after)
                if wanted:
                    earlier = woken.get(watch)
                    woken[watch] = wanted if earlier is None else earlier + wanted
        # Waiters with the same channels and events share one Delivery (what it holds
        # does not depend on their cursors), so a renderer that memoises on it does its
        # work once for all of them.
        shared: dict[Any, Delivery] = {}
        ready: list[tuple[Watch, Delivery]] = []
        for watch, events in woken.items():
            self._remove(watch)
            key: Hashable
            if len(watch.channels) == 1:
                key = (watch.channels, id(events))  # the list shared per channel/cursor
            else:
                key = (watch.channels, tuple(id(e) for e in events))
            delivery = shared.get(key)
            if delivery is None:
                delivery = shared[key] = Delivery(events, memo)
            ready.append((watch, delivery))
        return ready

    def _wake_slice(self, ready: list[tuple[Watch, Delivery]], start: int,
                    since: float = 0.0) -> None:
        """Wake waiters a slice per loop turn: the first answers are written while
        the rest are still being rendered, and other requests are not starved.

        A slice ends after ``FAN_OUT_SLICE`` waiters or once it has run for
        ``FAN_OUT_SLICE_SECONDS`` (it always wakes at least one), so its length
        follows what the renders cost.  Without a scheduler everyone is woken now.
        """
        total = len(ready)
        if self._scheduler is None:
            stop, deadline = total, None
        else:
            stop = min(total, start + FAN_OUT_SLICE)
            deadline = time.perf_counter() + FAN_OUT_SLICE_SECONDS
        index = start
        woken = 0
        try:
            while index < stop:
                watch, delivery = ready[index]
                index += 1
                wake, watch.wake = watch.wake, None
                if wake is not None:  # None: cancelled while waiting for its slice
                    woken += 1
                    wake(delivery)
                    if deadline is not None and time.perf_counter() >= deadline:
                        break
        finally:  # even if a wake-up raised: the others are still woken
            if since:
                self.delivered_total += woken
            if index < total:
                after_io = self._after_io
                if after_io is None:  # no scheduler (any more): finish now
                    self._wake_slice(ready, index, since)
                else:
                    after_io(lambda: self._wake_slice(ready, index, since))
            elif since and self.on_fanout is not None:
                self.on_fanout(time.perf_counter() - since)

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
        self.call_soon(lambda: self._wake_slice([(watch, Delivery(ready))], 0))
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
            self._drop_follower(follower)

    def _drop_follower(self, follower: Follower) -> None:
        _unregister(self._followers, follower, follower.channels)

    def following(self) -> int:
        """How many followers (open event streams) there are."""
        with self._lock:
            return len({f for followers in self._followers.values() for f in followers})

    def wake_all(self) -> None:
        """Answer every waiter with no events (shutdown, broker reconnect): they re-poll;
        tell every follower it may have missed events (``deliver(None)``).

        All share one empty ``Delivery``.  With a scheduler they are woken on the loop
        in slices, as a publish's waiters are; without one, at once.
        """
        with self._lock:
            watches = {w for waiters in self._waiters.values() for w in waiters}
            delivery = Delivery([])
            ready = []
            for watch in watches:
                self._remove(watch)
                ready.append((watch, delivery))
            lost = list({f for followers in self._followers.values() for f in followers})
            for follower in lost:
                self._drop_follower(follower)
            if not ready and not lost:
                return
            hand_out = self._queue_follow([[lost, None, 0, 0.0]]) if lost else False
        if hand_out:
            # Their streams end and their clients resume from the durable store.
            self.call_soon(self._follow_slice)
        if ready:
            self.call_soon(lambda: self._wake_slice(ready, 0))

    def signal_windows(self) -> int:
        """How many channels have a signal window open (see ``set_signal_window``)."""
        with self._lock:
            return len(self._held)

    def waiting(self) -> int:
        with self._lock:
            return len({w for waiters in self._waiters.values() for w in waiters})

    def wait_blocking(self, channels: tuple[str, ...], after: int | None,
                      timeout: float) -> Delivery:
        """Block the calling thread until events or timeout (servers without comet)."""
        if self.broker is not None:
            return self.broker.wait_blocking(self, channels, after, timeout)
        done = threading.Event()
        box: list[Delivery] = []

        def wake(delivery: Delivery) -> None:
            box.append(delivery)
            done.set()

        watch = self.watch(channels, after, wake)
        if not done.wait(timeout):
            self.cancel(watch)
        return box[0] if box else Delivery([])


    def follow_blocking(self, channels: tuple[str, ...], after: int | None,
                        heartbeat: float, duration: float) -> Iterator[Delivery]:
        """An event stream on the calling thread (servers without comet): every batch
        past ``after`` for ``duration`` seconds, and an empty ``Delivery`` after each
        ``heartbeat`` seconds without one.  One subscription for the whole stream, so
        nothing published between two batches is missed."""
        if self.broker is not None:
            yield from self.broker.follow_blocking(self, channels, after, heartbeat, duration)
            return
        deadline = time.monotonic() + duration
        batches: deque[Delivery | None] = deque()
        arrived = threading.Event()

        def deliver(delivery: Delivery | None) -> None:
            batches.append(delivery)
            arrived.set()

        # Follow first, then read the history: an event published in between is in
        # both (and sent once), never in neither.
        follower = self.follow(channels, after, deliver)
        try:
            seen = after
            history = self.events_after(channels, after)
            if history:
                seen = max(e.cursor for e in history if e.cursor is not None)
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
                    events = delivery.events if seen is None else [
                        e for e in delivery.events if e.cursor is None or e.cursor > seen]
                    cursors = [e.cursor for e in events if e.cursor is not None]
                    if cursors:
                        seen = max(cursors)
                    if events:
                        yield Delivery(events, delivery.memo)
        finally:
            self.unfollow(follower)


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


_default_hub: Hub | None = None
_default_lock = threading.Lock()


_hub_factory: Callable[[], Hub] = Hub


def set_hub_factory(factory: Callable[[], Hub]) -> None:
    """How ``get_hub`` makes the process's hub when none is set (the Django app
    installs one that reads ``COMET_BROKER``; the core reads no settings)."""
    global _hub_factory
    _hub_factory = factory


def get_hub() -> Hub:
    """The process's hub, made on first use by the hub factory."""
    global _default_hub
    if _default_hub is None:
        with _default_lock:
            if _default_hub is None:
                _default_hub = _hub_factory()
    return _default_hub


def set_hub(hub: Hub | None) -> None:
    """Replace the process's hub (tests, servers that build their own)."""
    global _default_hub
    _default_hub = hub


_warned_unreachable = False


def publish(channel: str, payload: Any = None, cursor: int | None = None, *,
            coalesce: bool = False) -> Event:
    """Publish an event on ``channel`` through the process's hub (``coalesce``: a
    signal whose wake-up of parked long-polls may wait, see ``Hub.set_signal_window``).

    A publish that can reach nobody (no ``COMET_BROKER``, no comet server running in
    this process, no waiter here on ``channel``: typically ``manage.py shell`` or a
    worker without the broker setting) logs one warning per process, then stays quiet.
    """
    hub = get_hub()
    unreachable = not _warned_unreachable and _reaches_nobody(hub, channel)
    event = hub.publish(channel, payload, cursor, coalesce=coalesce)  # bad input raises first
    if unreachable:
        _warn_unreachable(channel)
    return event


def _reaches_nobody(hub: Hub, channel: Any) -> bool:
    return (hub.broker is None and hub._scheduler is None and isinstance(channel, str)
            and not hub._waiters.get(channel))


def _warn_unreachable(channel: str) -> None:
    global _warned_unreachable
    with _default_lock:  # two threads at once: still one warning
        if _warned_unreachable:
            return
        _warned_unreachable = True
    logging.getLogger(__name__).warning(
        "publish(%r) reached nobody: COMET_BROKER is not set and no comet server runs in "
        "this process, so other processes (runcomet) never see it; set COMET_BROKER="
        "redis://... in this process's environment too (warned once per process)", channel)

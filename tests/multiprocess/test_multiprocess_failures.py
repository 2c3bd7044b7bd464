"""Losing a worker or Redis mid-wait loses no message and shows none twice."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time

import pytest

from tests.multiprocess import helpers
from tests.multiprocess.helpers import (
    Poster,
    assert_exactly_once_in_order,
    join_followers,
    start_followers,
    wait_until,
)

pytestmark = pytest.mark.multiprocess


def test_killing_a_worker_mid_wait_loses_no_message(start_chat_server, room, mp_database) -> None:
    """kill -9 the worker holding parked polls: its clients reconnect from their cursor,
    the master replaces the worker, and every message arrives exactly once, in order."""
    slug, room_id = room
    server = start_chat_server(workers=2)
    poster = Poster("carol")
    before = [poster.post(server, slug, f"before {i}")["id"] for i in range(3)]
    followers = start_followers(16, [server], slug, 0, want=8, timeout=60)
    try:
        wait_until(lambda: all(len(f.received) == 3 for f in followers), 20,
                   "the followers to read the first messages")
        server.wait_parked(16)
        poster.session.close()  # only the polls and our probes hold connections now
        pinned = server.pin_workers()
        try:
            parked = {pid: helpers.pinned_stats(conn)["parked"] for pid, conn in pinned.items()}
            victim = max(parked, key=lambda pid: parked[pid])
            assert parked[victim] > 0, parked
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: victim not in server.worker_pids()
                       and len(server.worker_pids()) == 2, 20, "a replacement worker")
            # Every client that lost its connection has connected again (the kernel
            # holds 16 polls + our pinned connection to the survivor)...
            wait_until(lambda: server.established() == 17, 20, "the clients to reconnect")
            # ...and the surviving worker still serves the connection it already had.
            survivor = next(pid for pid in pinned if pid != victim)
            pinned[survivor].sock.settimeout(5)  # type: ignore[union-attr]
            try:
                helpers.pinned_stats(pinned[survivor])
            except TimeoutError:
                raise AssertionError(
                    f"surviving worker {survivor} froze after the replacement was forked "
                    "(stuck in a blocking accept(): see the report on prefork's sock.dup())"
                ) from None
        finally:
            for conn in pinned.values():
                conn.close()
        after = [poster.post(server, slug, f"after {i}")["id"] for i in range(5)]
        join_followers(followers, 40)
    finally:
        for follower in followers:
            follower.deadline = 0  # stop the stragglers of a failed run
    expected = before + after
    assert helpers.db_message_ids(mp_database, room_id) == expected
    assert_exactly_once_in_order(followers, expected)
    dropped = sum(1 for f in followers if f.errors)
    assert dropped >= parked[victim], (
        f"{parked[victim]} polls were parked on the killed worker but only {dropped} "
        "clients saw their connection drop")
    assert server.proc.poll() is None, "the master died with its worker"


def test_replacing_a_worker_keeps_the_shared_listening_socket_non_blocking(
        start_chat_server) -> None:
    """The workers accept on one shared socket until EAGAIN; if spawning a replacement
    makes that socket blocking even briefly, a surviving worker that accepts in that
    moment blocks inside accept() and serves nobody until another client connects."""
    server = start_chat_server(workers=2)
    flags = server.listening_fd_flags()
    assert flags() & os.O_NONBLOCK
    victim = min(server.worker_pids())
    os.kill(victim, signal.SIGKILL)
    blocking_seen = 0
    probe: list = []
    probe_thread = None
    deadline = time.monotonic() + 20
    while not (victim not in server.worker_pids() and len(server.worker_pids()) == 2
               and server.subscriptions() >= 3):
        assert time.monotonic() < deadline, "no replacement worker came up"
        if not flags() & os.O_NONBLOCK:
            blocking_seen += 1
            if probe_thread is None:  # a client connecting in exactly that moment
                probe_thread = threading.Thread(target=_probe, args=(server, probe))
                probe_thread.start()
    if probe_thread is not None:
        probe_thread.join(15)
    assert not blocking_seen, (
        f"the shared listening socket was blocking in {blocking_seen} samples while the "
        f"replacement started; a request made then got: {probe}")


def _probe(server: helpers.Server, box: list) -> None:
    started = time.monotonic()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=8)
        conn.request("GET", "/_comet/stats")
        conn.getresponse().read()
        box.append(f"an answer after {time.monotonic() - started:.2f}s")
    except OSError as exc:
        box.append(f"no answer in {time.monotonic() - started:.1f}s ({exc!r})")


def test_redis_restart_while_polls_are_parked_loses_no_message(
        start_chat_server, room, mp_database, keep_redis_running) -> None:
    """Redis goes away and comes back: parked polls are answered once the subscribers
    reconnect (they re-read the database), and messages posted while Redis was down
    or after it returned all arrive, once each, in order."""
    slug, room_id = room
    a, b = start_chat_server(), start_chat_server(workers=2)
    poster = Poster("dave")
    first = poster.post(a, slug, "before the restart")["id"]
    followers = start_followers(12, [a, b], slug, 0, want=6, timeout=90)
    try:
        wait_until(lambda: all(len(f.received) == 1 for f in followers), 20,
                   "the followers to read the first message")
        a.wait_parked(6)
        b.wait_parked(6)
        helpers.redis_stop()
        try:
            # Posted on A while Redis is down: B's parked polls cannot hear of these
            # until B's subscriber is back and re-checks its waiters.
            during = [poster.post(a, slug, f"during {i}")["id"] for i in range(2)]
        finally:
            helpers.redis_start()
        wait_until(lambda: all(len(f.received) >= 3 for f in followers), 30,
                   "the parked polls to be answered after Redis came back")
        a.wait_parked(6)
        b.wait_parked(6)
        after = [poster.post(server, slug, f"after on {server.port}")["id"]
                 for server in (a, b, a)]
        join_followers(followers, 30)
    finally:
        for follower in followers:
            follower.deadline = 0
    expected = [first, *during, *after]
    assert helpers.db_message_ids(mp_database, room_id) == expected
    assert_exactly_once_in_order(followers, expected)
    for server in (a, b):
        assert server.subscriptions() >= 2 * server.workers, (
            f"{server.name} did not resubscribe:\n{server.log()}")


def test_sighup_replaces_workers_without_refusing_or_losing_anything(
        start_chat_server, room, mp_database) -> None:
    """A graceful reload (SIGHUP): new worker pids, parked clients re-poll from their
    cursor, new clients are never refused or left hanging, nothing is lost."""
    slug, room_id = room
    server = start_chat_server(workers=2)
    poster = Poster("erin")
    first = poster.post(server, slug, "before the reload")["id"]
    followers = start_followers(8, [server], slug, 0, want=4, timeout=60)
    try:
        wait_until(lambda: all(len(f.received) == 1 for f in followers), 20,
                   "the followers to read the first message")
        server.wait_parked(8)
        old = server.worker_pids()
        problems: list[str] = []
        stop = threading.Event()

        def knock() -> None:  # a load balancer's health check during the reload
            while not stop.is_set():
                started = time.monotonic()
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
                    conn.request("GET", "/_comet/stats")
                    conn.getresponse().read()
                    conn.close()
                except OSError as exc:
                    problems.append(f"{exc!r} after {time.monotonic() - started:.2f}s")

        checker = threading.Thread(target=knock)
        checker.start()
        try:
            server.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: len(server.worker_pids()) == 2
                       and not server.worker_pids() & old, 20, "two fresh workers")
            wait_until(lambda: server.subscriptions() >= 4, 20, "the new workers to subscribe")
        finally:
            stop.set()
            checker.join(10)
        assert not problems, problems[:5]
        after = [poster.post(server, slug, f"after the reload {i}")["id"] for i in range(3)]
        join_followers(followers, 30)
    finally:
        for follower in followers:
            follower.deadline = 0
    expected = [first, *after]
    assert helpers.db_message_ids(mp_database, room_id) == expected
    assert_exactly_once_in_order(followers, expected)
    assert server.proc.poll() is None

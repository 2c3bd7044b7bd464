"""Cursors stay gap-free in meaning when several processes commit to one room at once."""

from __future__ import annotations

import threading

import pytest

from tests.multiprocess import helpers
from tests.multiprocess.helpers import (
    Poster,
    assert_exactly_once_in_order,
    start_followers,
)

pytestmark = pytest.mark.multiprocess

THREADS = 8
PER_THREAD = 15


def test_concurrent_posts_through_two_processes_reach_pollers_exactly_once_in_order(
        start_chat_server, room, mp_database) -> None:
    """Message ids come from one PostgreSQL sequence; if a higher id could commit before a
    lower one, a client resuming after the higher id would never see the lower one.
    Posting threads hammer one room through two processes (one of them pre-forked)
    while followers on both poll with the cursor; each must end up with exactly the
    room's rows, in id order.  Commits are slowed (a trigger) so that a missing room
    lock would really reorder them."""
    slug, room_id = room
    a, b = start_chat_server(), start_chat_server(workers=2)
    total = THREADS * PER_THREAD
    followers = start_followers(4, [a, b], slug, 0, want=total, timeout=90)
    a.wait_parked(2)
    b.wait_parked(2)
    posted: list[int] = []
    failures: list[str] = []
    go = threading.Barrier(THREADS)

    def post_many(n: int) -> None:
        poster = Poster(f"poster{n}")
        try:
            go.wait(30)
            for i in range(PER_THREAD):
                server = (a, b)[(n + i) % 2]
                posted.append(poster.post(server, slug, f"{n}:{i}")["id"])
        except Exception as exc:  # reported below, the thread must not die silently
            failures.append(repr(exc))

    posters = [threading.Thread(target=post_many, args=(n,)) for n in range(THREADS)]
    try:
        with helpers.slow_commits(mp_database, room_id):
            for thread in posters:
                thread.start()
            for thread in posters:
                thread.join(90)
        assert not failures, failures
        assert len(posted) == total
        # Once a follower's cursor reaches the last id it has all it will ever get.
        helpers.wait_until(lambda: all(f.cursor >= max(posted) for f in followers), 30,
                           "the followers' cursors to reach the last message")
    finally:
        for follower in followers:
            follower.deadline = 0
    stored = helpers.db_message_ids(mp_database, room_id)
    assert sorted(posted) == stored
    assert_exactly_once_in_order(followers, stored)
    # the followers really followed along rather than reading everything at the end
    assert all(f.answers > 3 for f in followers), [f.answers for f in followers]

"""The connection's state machine: every move of ``TRANSITIONS`` does what its state
says (the events watched, the deadline), every other move raises, and the table has
no dead end.  A real loop and a real socket pair; the owner is a plain record."""

from __future__ import annotations

import itertools
import socket
import time
from collections import deque
from collections.abc import Iterator

import pytest

from comet_server.loop import EventLoop
from comet_server.protocol import http1
from comet_server.protocol.connection import (
    LINGER_SECONDS,
    TRANSITIONS,
    ConnState,
    HTTPConnection,
    IllegalTransition,
)

HEAD_TIMEOUT = 7.0
KEEPALIVE_TIMEOUT = 11.0


class Owner:
    """What a connection asks of its server, and nothing more."""

    def __init__(self, loop: EventLoop) -> None:
        self.loop = loop
        self.limits = http1.Limits()
        self.head_timeout = HEAD_TIMEOUT
        self.keepalive_timeout = KEEPALIVE_TIMEOUT
        self.min_body_rate = 1024
        self.stopping = False
        self.body_bytes = 0
        self.max_body_bytes_total = 1 << 20
        self.forgotten: list[HTTPConnection] = []

    def serve(self, conn: HTTPConnection, request: http1.Request) -> None:
        raise AssertionError("no request is sent in these tests")

    def forget(self, conn: HTTPConnection) -> None:
        self.forgotten.append(conn)

    def refused(self, conn: HTTPConnection, error: http1.ProtocolError) -> None:
        raise AssertionError("no request is sent in these tests")


@pytest.fixture
def make_connection() -> Iterator:
    loop = EventLoop()
    sockets: list[socket.socket] = []

    def make() -> HTTPConnection:
        ours, peer = socket.socketpair()
        ours.setblocking(False)
        sockets.append(peer)
        return HTTPConnection(Owner(loop), ours, ("127.0.0.1", "1"), "127.0.0.1")

    yield make
    for peer in sockets:
        peer.close()
    loop.close()


def path_to(target: ConnState) -> list[ConnState]:
    """The shortest walk through ``TRANSITIONS`` from a new connection to ``target``."""
    paths = {ConnState.READING: []}
    queue = deque([ConnState.READING])
    while queue:
        state = queue.popleft()
        for nxt in TRANSITIONS[state]:
            if nxt not in paths:
                paths[nxt] = [*paths[state], nxt]
                queue.append(nxt)
    return paths[target]


def enter(conn: HTTPConnection, state: ConnState) -> None:
    if state is ConnState.CLOSED:
        conn.close()
    else:
        conn._enter(state)


def check_follows(conn: HTTPConnection, state: ConnState) -> None:
    """The watches and the deadline are those ``state`` stands for."""
    assert conn.state is state
    left = conn.deadline - time.monotonic()
    if state is ConnState.READING:
        assert conn.read_watch.active
        assert HEAD_TIMEOUT - 1 < left <= HEAD_TIMEOUT
    elif state is ConnState.IDLE:
        assert conn.read_watch.active
        assert KEEPALIVE_TIMEOUT - 1 < left <= KEEPALIVE_TIMEOUT
    elif state is ConnState.LINGERING:
        assert conn.read_watch.active
        assert LINGER_SECONDS - 1 < left <= LINGER_SECONDS
    elif state is ConnState.UPGRADED:  # a WebSocket's own timers keep its time
        assert conn.read_watch.active
        assert conn.deadline == 0.0 and conn.timer is None
    elif state is ConnState.BUSY:
        assert not conn.read_watch.active
        assert conn.closed_watch is not None and conn.closed_watch.active
        assert conn.deadline == 0.0  # nothing unsent: no deadline while a reply is made
    else:
        assert conn.deadline == 0.0 and conn.timer is None
        assert conn in conn.owner.forgotten  # type: ignore[attr-defined]
    if state is not ConnState.BUSY and conn.closed_watch is not None:
        assert not conn.closed_watch.active


def test_every_state_is_reachable_and_can_close() -> None:
    for state in ConnState:
        assert state is ConnState.READING or path_to(state)
        if state is not ConnState.CLOSED:
            assert ConnState.CLOSED in TRANSITIONS[state]
    assert TRANSITIONS[ConnState.CLOSED] == frozenset()


@pytest.mark.parametrize(("old", "new"), list(itertools.product(ConnState, ConnState)),
                         ids=lambda s: s.name)
def test_each_move_is_taken_or_refused_as_the_table_says(make_connection, old, new) -> None:
    conn = make_connection()
    for step in path_to(old):
        enter(conn, step)
    check_follows(conn, old)
    if new in TRANSITIONS[old]:
        enter(conn, new)
        check_follows(conn, new)
    else:
        with pytest.raises(IllegalTransition):
            conn._enter(new)
        assert conn.state is old


def test_close_goes_through_the_table(make_connection) -> None:
    conn = make_connection()
    conn.close()
    conn.close()  # closing twice is harmless, not a move
    assert conn.state is ConnState.CLOSED
    with pytest.raises(IllegalTransition):
        conn._enter(ConnState.READING)

"""Long-poll and stream semantics on the real server, and parked clients going away."""

from __future__ import annotations

import socket
import struct
import time
import uuid

import pytest
import requests

from tests.helpers.http import (
    RawResponse,
    build_request,
    connect,
    is_closed,
    read_chunk,
    read_head,
    read_response,
)
from tests.helpers.proc import ServerProcess


def new_channel(prefix: str) -> str:
    """A channel no other test uses (the shared server keeps history per channel)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def publish(server: ServerProcess, channel: str, payload: object,
            cursor: int | None = None) -> None:
    query = f"?cursor={cursor}" if cursor is not None else ""
    response = requests.post(server.url(f"/pub/{channel}{query}"), json=payload, timeout=10)
    assert response.status_code == 200, response.text


def park(server: ServerProcess, channel: str, query: str) -> socket.socket:
    """Open a connection and send a long-poll on it; the answer is read later."""
    sock = connect(server.port)
    sock.sendall(build_request("GET", f"/wait/{channel}?{query}"))
    return sock


def answer(sock: socket.socket) -> RawResponse:
    with sock.makefile("rb") as reader:
        return read_response(reader)


def still_waiting(sock: socket.socket, seconds: float = 0.3) -> bool:
    """Nothing arrives on ``sock`` for ``seconds`` (a negative check needs some time)."""
    sock.settimeout(seconds)
    try:
        sock.recv(1, socket.MSG_PEEK)  # data or EOF: it did not wait
        return False
    except TimeoutError:
        return True
    finally:
        sock.settimeout(15)


# -- semantics (shared server, own channels) ---------------------------------------------


def test_publish_wakes_only_waiters_behind_the_cursor(comet: ServerProcess) -> None:
    """after < cursor is woken with the event; after >= cursor keeps waiting."""
    channel = new_channel("cursor")
    base = comet.stats()["waiters"]
    behind = park(comet, channel, "after=0&timeout=30")
    ahead = park(comet, channel, "after=5&timeout=30")
    try:
        comet.wait_stats(lambda s: s["waiters"] >= base + 2, message="two waiters")
        publish(comet, channel, {"text": "three"}, cursor=3)
        woken = answer(behind)
        assert woken.status == 200
        assert woken.json() == {"events": [{"cursor": 3, "payload": {"text": "three"}}],
                                "after": 0}
        assert still_waiting(ahead)
        publish(comet, channel, {"text": "six"}, cursor=6)
        assert answer(ahead).json() == {"events": [{"cursor": 6, "payload": {"text": "six"}}],
                                        "after": 5}
    finally:
        behind.close()
        ahead.close()


def test_connection_is_reused_after_a_long_poll(comet: ServerProcess) -> None:
    """After a parked answer the connection is an ordinary keep-alive one again."""
    channel = new_channel("reuse")
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        for cursor in (1, 2):
            sock.sendall(build_request("GET", f"/wait/{channel}?after={cursor - 1}&timeout=30"))
            comet.wait_stats(lambda s: s["parked"] >= 1, message="the poll to park")
            publish(comet, channel, cursor, cursor=cursor)
            assert read_response(reader).json()["events"] == [{"cursor": cursor,
                                                               "payload": cursor}]
        sock.sendall(build_request("GET", "/hello"))
        assert read_response(reader).body == b"hello"


def test_late_waiter_is_answered_from_history(comet: ServerProcess) -> None:
    """A client that polls after missing events gets them at once, in cursor order."""
    channel = new_channel("history")
    for cursor in (1, 2, 3):
        publish(comet, channel, f"m{cursor}", cursor=cursor)
    t0 = time.monotonic()
    response = requests.get(comet.url(f"/wait/{channel}?after=1&timeout=30"), timeout=10)
    assert time.monotonic() - t0 < 1.0
    assert response.json() == {"events": [{"cursor": 2, "payload": "m2"},
                                          {"cursor": 3, "payload": "m3"}], "after": 1}
    with park(comet, channel, "after=3&timeout=30") as up_to_date:
        assert still_waiting(up_to_date)  # nothing newer than 3: it parks


def test_signal_without_cursor_wakes_but_is_not_replayed(comet: ServerProcess) -> None:
    """A cursor-less event (presence, typing) wakes current waiters only."""
    channel = new_channel("signal")
    base = comet.stats()["waiters"]
    with park(comet, channel, "timeout=30") as sock:
        comet.wait_stats(lambda s: s["waiters"] >= base + 1, message="the waiter")
        publish(comet, channel, {"typing": True})
        assert answer(sock).json() == {"events": [{"cursor": None,
                                                   "payload": {"typing": True}}],
                                       "after": None}
    with park(comet, channel, "after=0&timeout=30") as late:
        assert still_waiting(late)  # the signal is not in the history


def test_timeout_answers_with_no_events(comet: ServerProcess) -> None:
    """A long-poll that times out gets a 200 with an empty list, near its timeout."""
    channel = new_channel("timeout")
    t0 = time.monotonic()
    response = requests.get(comet.url(f"/wait/{channel}?after=7&timeout=0.5"), timeout=10)
    elapsed = time.monotonic() - t0
    assert response.status_code == 200
    assert response.json() == {"events": [], "after": 7}
    assert 0.4 < elapsed < 3, elapsed
    comet.wait_stats(lambda s: s["parked"] == 0, message="the timed-out poll to unpark")


def test_many_waiters_woken_by_one_publish(comet: ServerProcess) -> None:
    """One publish answers every waiter on the channel (and none on another)."""
    channel, other = new_channel("fanout"), new_channel("other")
    base = comet.stats()["waiters"]
    socks = [park(comet, channel, "after=0&timeout=30") for _ in range(50)]
    bystander = park(comet, other, "after=0&timeout=30")
    try:
        comet.wait_stats(lambda s: s["waiters"] >= base + 51, message="51 waiters")
        publish(comet, channel, "all", cursor=1)
        for sock in socks:
            assert answer(sock).json()["events"] == [{"cursor": 1, "payload": "all"}]
        assert still_waiting(bystander)
    finally:
        for sock in [*socks, bystander]:
            sock.close()


def test_stream_sends_events_as_chunks(comet: ServerProcess) -> None:
    """/stream sends "open", then one chunk per published event, on one response."""
    channel = new_channel("stream")
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", f"/stream/{channel}?duration=20"))
        response = read_head(reader)
        assert response.status == 200
        assert response.header("Transfer-Encoding") == "chunked"
        assert read_chunk(reader, response) == b"open\n"
        comet.wait_stats(lambda s: s["parked"] >= 1, message="the stream to park")
        publish(comet, channel, {"n": 1}, cursor=1)
        assert read_chunk(reader, response) == b'1:{"n": 1}\n'
        publish(comet, channel, "two", cursor=2)
        assert read_chunk(reader, response) == b'2:"two"\n'
    comet.wait_stats(lambda s: s["streaming"] == 0 and s["parked"] == 0,
                     message="the closed stream to be forgotten")


def test_stream_ends_cleanly_after_its_duration(comet: ServerProcess) -> None:
    """A stream with a duration ends with the 0-chunk so the client reconnects."""
    channel = new_channel("short")
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", f"/stream/{channel}?duration=0.5"))
        response = read_response(reader)
    assert response.complete and response.chunks[0] == b"open\n"


# -- parked clients going away (own server: exact counters) -----------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
def test_disconnect_while_parked_frees_everything(start_server, how: str) -> None:
    """200 parked long-polls whose clients leave are forgotten within about a second."""
    server = start_server("--no-access-log")
    channel = new_channel("gone")
    socks = [park(server, channel, "timeout=60") for _ in range(200)]
    try:
        stats = server.wait_stats(lambda s: s["parked"] == 200, timeout=10,
                                  message="200 parked")
        assert stats["waiters"] == 200
    finally:
        t0 = time.monotonic()
        for sock in socks:
            if how == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
    stats = server.wait_stats(lambda s: s["parked"] == 0 and s["waiters"] == 0, timeout=5,
                              message="the parked requests to be dropped")
    assert time.monotonic() - t0 < 3
    assert stats["connections"] <= 1  # only our stats request
    publish(server, channel, "nobody listens", cursor=1)  # no waiter left to trip over
    assert requests.get(server.url("/hello"), timeout=10).content == b"hello"


def test_disconnect_while_streaming_frees_the_stream(start_server) -> None:
    """Streams and demos whose clients leave are dropped too, and nothing is sent."""
    server = start_server("--no-access-log")
    channel = new_channel("gone-stream")
    socks = []
    for path in [f"/stream/{channel}?duration=60"] * 5 + ["/demo/"] * 5:
        sock = connect(server.port)
        sock.sendall(build_request("GET", path))
        socks.append(sock)
    server.wait_stats(lambda s: s["streaming"] == 10 and s["parked"] == 10, timeout=10,
                      message="10 streams")
    for sock in socks:
        sock.close()
    server.wait_stats(lambda s: s["streaming"] == 0 and s["parked"] == 0 and s["waiters"] == 0,
                      timeout=3, message="the streams to be dropped")
    publish(server, channel, "late", cursor=1)
    assert requests.get(server.url("/hello"), timeout=10).content == b"hello"
    assert "Traceback" not in server.stderr()


def test_parked_connection_is_not_closed_by_keepalive_timeout(start_server) -> None:
    """A long-poll outlives the idle timeout: parked is not idle."""
    server = start_server("--keepalive-timeout", "1")
    channel = new_channel("idle")
    with park(server, channel, "after=0&timeout=30") as sock:
        server.wait_stats(lambda s: s["parked"] == 1, message="the poll to park")
        assert not is_closed(sock, timeout=2.5)  # well past the 1 s idle timeout
        publish(server, channel, "still here", cursor=1)
        assert answer(sock).json()["events"] == [{"cursor": 1, "payload": "still here"}]


def test_a_parked_client_flooding_bytes_does_not_grow_the_server(start_server) -> None:
    """Pipelined bytes behind a parked request are buffered up to one maximal request,
    not without end; the flood's connection is still answered and then dropped."""
    server = start_server("--max-body-size", "4096", "--max-header-size", "4096",
                          "--no-access-log")
    channel = new_channel("flood")
    sock = park(server, channel, "timeout=3")
    server.wait_stats(lambda s: s["parked"] == 1, message="the poll to park")
    before = server.rss_kib()
    sock.setblocking(False)
    junk = b"x" * 65536
    sent = 0
    deadline = time.monotonic() + 3
    while sent < 32 * 1024 * 1024 and time.monotonic() < deadline:
        try:
            sent += sock.send(junk)
        except BlockingIOError:
            time.sleep(0.01)  # the server stopped reading: that is the point
    assert server.rss_kib() - before < 8 * 1024, f"{sent} bytes sent"
    sock.close()
    server.wait_stats(lambda s: s["parked"] == 0, timeout=10, message="the flood to end")
    assert requests.get(server.url("/hello"), timeout=10).content == b"hello"

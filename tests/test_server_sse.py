"""Server-Sent Events (``event_stream``) on a real runcomet server, black-box.

Most tests share one server (``comet``) and use channels of their own.  The bytes are
read off raw sockets where they matter (framing, ids, heartbeats, the last chunk); what
a browser would make of them is checked with a real SSE client (httpx-sse, whose line
splitting and field rules follow the WHATWG spec).

A stream is registered with the hub in the same loop turn that writes its ``retry:``
line, so once a client has read that line a publish is sure to reach it: no test waits
for a stream to "settle".  Nothing sleeps a fixed time; socket timeouts are safety nets.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import requests
from django.test import Client
from httpx_sse import EventSource, ServerSentEvent, connect_sse

from comet_server import get_hub
from comet_server import publish as publish_in_process
from tests.helpers import nginx
from tests.helpers.http import (
    RawResponse,
    build_request,
    connect,
    is_closed,
    read_chunk,
    read_head,
    read_response,
)
from tests.helpers.proc import SERVER_ENV, ServerProcess, launch, runcomet_argv, wait_until
from tests.test_server_longpoll import new_channel, publish

RETRY_FRAME = b"retry: 3000\n\n"
PING_FRAME = b": ping\n\n"


class RawStream:
    """One event stream on a raw socket: its head as sent, then its frames one by one
    (a frame is everything up to a blank line), de-chunked on HTTP/1.1."""

    def __init__(self, server: ServerProcess | nginx.Nginx, path: str, *,
                 version: str = "HTTP/1.1",
                 headers: dict[str, str] | None = None, timeout: float = 15.0,
                 keep_raw: bool = True) -> None:
        self.sock = connect(server.port, timeout=timeout)
        self.reader = self.sock.makefile("rb")
        self.sock.sendall(build_request("GET", path, version=version, headers=headers))
        self.head: RawResponse = read_head(self.reader)
        self.chunked = (self.head.header("Transfer-Encoding") or "").lower() == "chunked"
        self.buffer = b""
        self.raw = b""  # every body byte received (de-chunked), if keep_raw
        self.keep_raw = keep_raw
        self.ended = False  # the body ended (last chunk, or EOF)
        self.times: list[float] = []  # when each frame was taken off the wire

    @property
    def complete(self) -> bool:
        """The stream ended with its last chunk (not cut)."""
        return self.head.complete

    def _more(self) -> bool:
        if self.ended:
            return False
        if self.chunked:
            data = read_chunk(self.reader, self.head)
        else:
            data = self.reader.read1(65536) or None
        if data is None:
            self.ended = True
            return False
        self.buffer += data
        if self.keep_raw:
            self.raw += data
        return True

    def next_frame(self) -> bytes | None:
        """The next frame, blank line included; None once the stream ended."""
        while b"\n\n" not in self.buffer:
            if not self._more():
                return None
        frame, _, self.buffer = self.buffer.partition(b"\n\n")
        self.times.append(time.monotonic())
        return frame + b"\n\n"

    def next_event(self) -> bytes | None:
        """The next frame that is not a heartbeat."""
        while (frame := self.next_frame()) == PING_FRAME:
            pass
        return frame

    def rest(self) -> list[bytes]:
        """Every frame up to the end of the stream."""
        frames = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def __enter__(self) -> RawStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def field_lines(frame: bytes, name: bytes) -> list[bytes]:
    return [line for line in frame.split(b"\n") if line.startswith(name + b":")]


def ids_of(frames: list[bytes]) -> list[bytes]:
    return [line[4:] for frame in frames for line in field_lines(frame, b"id")]


@contextmanager
def sse_client(server: ServerProcess, path: str, headers: dict[str, str] | None = None,
               ) -> Iterator[Iterator[ServerSentEvent]]:
    """The stream as a real SSE client parses it.  Its first item is checked to be the
    ``retry`` field alone (the stream is then registered); the events follow."""
    with httpx.Client(timeout=15.0) as client, \
            connect_sse(client, "GET", server.url(path), headers=headers or {}) as source:
        assert isinstance(source, EventSource)
        events = source.iter_sse()
        first = next(events)
        assert (first.retry, first.data, first.event) == (3000, "", "message"), first
        yield dispatched(events)


def dispatched(events: Iterator[ServerSentEvent]) -> Iterator[ServerSentEvent]:
    """The events a browser dispatches: httpx-sse also yields a blank line's "event"
    after an ``id:`` was once seen (a heartbeat's blank line then shows up as an empty
    event with the old id), which browsers drop since their data is empty.  No test
    here publishes empty data."""
    return (event for event in events if event.data != "")


# -- framing (shared server) ------------------------------------------------------------


def test_headers_chunked_and_retry_first(comet: ServerProcess) -> None:
    """The head says event-stream, never cache, never buffer; the body is chunked on
    HTTP/1.1 and starts with the ``retry:`` field (?retry= in seconds -> ms)."""
    channel = new_channel("head")
    with RawStream(comet, f"/sse/{channel}?retry=1.5") as stream:
        head = stream.head
        assert (head.version, head.status) == ("HTTP/1.1", 200)
        content_type = head.header("Content-Type") or ""
        assert content_type.split(";")[0].strip() == "text/event-stream"
        assert "utf-8" in content_type.lower()
        assert head.header("Cache-Control") == "no-store"
        assert head.header("X-Accel-Buffering") == "no"
        assert head.header("Transfer-Encoding") == "chunked"
        assert head.header("Content-Length") is None
        assert stream.next_frame() == b"retry: 1500\n\n"
        assert head.raw_chunk_sizes == [b"d\r\n"]  # one chunk holding exactly that frame
        publish(comet, channel, "x", cursor=1)
        assert stream.next_event() == b'id: 1\ndata: "x"\n\n'


def test_ids_only_on_events_with_a_cursor(comet: ServerProcess) -> None:
    """``id:`` (the browser's resume point) is written on cursored events only: not on
    signals, skipped events or heartbeats; the event name follows the id."""
    channel = new_channel("ids")
    with RawStream(comet, f"/sse/{channel}?heartbeat=0.2") as stream:
        assert stream.next_frame() == RETRY_FRAME
        publish(comet, channel, {"name": "chat", "data": "hello"}, cursor=7)
        publish(comet, channel, {"typing": "ann"})  # a signal
        publish(comet, channel, {"skip": True}, cursor=8)  # rendered as nothing at all
        publish(comet, channel, {"name": "chat", "data": "again"}, cursor=9)
        assert stream.next_event() == b"id: 7\nevent: chat\ndata: hello\n\n"
        assert stream.next_event() == b'data: {"typing": "ann"}\n\n'
        assert stream.next_event() == b"id: 9\nevent: chat\ndata: again\n\n"
        # Idle now: heartbeats come, each a bare comment without an id.
        assert stream.next_frame() == PING_FRAME
        assert stream.next_frame() == PING_FRAME
        assert ids_of([stream.raw]) == [b"7", b"9"]


@pytest.mark.parametrize("separator", ["\n", "\r\n", "\r"])
def test_multiline_data_is_split_into_data_lines(comet: ServerProcess, separator: str) -> None:
    """Data with LF, CRLF or CR breaks becomes one ``data:`` line per line (a raw CR
    would end the line for the client); a client joins them with LF."""
    channel = new_channel("lines")
    text = separator.join(["first", "", "  indented", "last"])
    with RawStream(comet, f"/sse/{channel}") as stream:
        assert stream.next_frame() == RETRY_FRAME
        publish(comet, channel, {"name": "multi", "data": text}, cursor=1)
        frame = stream.next_event()
        assert frame == (b"id: 1\nevent: multi\ndata: first\ndata: \ndata:   indented\n"
                         b"data: last\n\n")
        assert b"\r" not in stream.raw
    with sse_client(comet, f"/sse/{channel}?after=0") as events:
        event = next(events)
        assert (event.event, event.id, event.data) == ("multi", "1", "first\n\n  indented\nlast")


def test_utf8_survives_the_wire_and_the_client(comet: ServerProcess) -> None:
    """Non-ASCII text and emoji go out as UTF-8 bytes and come back intact, in data
    and in event names; a JSON message keeps its non-ASCII text too."""
    channel = new_channel("utf8")
    text = "héllo wörld — 日本語 🎉👍🏽"
    with RawStream(comet, f"/sse/{channel}") as stream:
        assert stream.next_frame() == RETRY_FRAME
        publish(comet, channel, {"name": "grüße", "data": text}, cursor=1)
        assert stream.next_event() == f"id: 1\nevent: grüße\ndata: {text}\n\n".encode()
    with sse_client(comet, f"/sse/{channel}?after=0") as events:
        event = next(events)
        assert (event.event, event.data) == ("grüße", text)
        publish(comet, channel, {"text": text}, cursor=2)
        event = next(events)
        assert (event.event, event.id) == ("message", "2")
        assert json.loads(event.data) == {"text": text}


def test_http10_stream_is_close_delimited(comet: ServerProcess) -> None:
    """HTTP/1.0 has no chunks: the frames are the body as is, and the stream ends by
    closing the connection."""
    channel = new_channel("http10")
    with RawStream(comet, f"/sse/{channel}?lifetime=1", version="HTTP/1.0") as stream:
        assert stream.head.version == "HTTP/1.0"
        assert stream.head.header("Transfer-Encoding") is None
        assert stream.head.header("Content-Length") is None
        assert (stream.head.header("Connection") or "").lower() == "close"
        assert stream.next_frame() == RETRY_FRAME
        publish(comet, channel, {"name": "n", "data": "one"}, cursor=1)
        assert stream.next_event() == b"id: 1\nevent: n\ndata: one\n\n"
        assert stream.rest() in ([], [PING_FRAME])  # then the connection closes
        assert stream.ended and stream.buffer == b""


def test_head_gets_the_headers_only_and_the_connection_stays_usable(
        comet: ServerProcess) -> None:
    """HEAD: the head a GET gets (chunked, so no Content-Length: RFC 9110 §8.6 forbids
    one that is not the GET body's), no body, no stream left open; the next request on
    the connection is served."""
    channel = new_channel("head")
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("HEAD", f"/sse/{channel}"))
        response = read_response(reader, head=True)
        assert response.status == 200
        assert (response.header("Content-Type") or "").startswith("text/event-stream")
        assert response.header("Cache-Control") == "no-store"
        assert response.header("X-Accel-Buffering") == "no"
        assert response.header("Content-Length") is None
        assert response.header("Transfer-Encoding") == "chunked"
        sock.sendall(build_request("GET", "/hello"))
        assert read_response(reader).body == b"hello"  # no stray body bytes before it


# -- resuming (shared server) -------------------------------------------------------------


def test_last_event_id_header_beats_the_after_parameter(comet: ServerProcess) -> None:
    """A reconnecting browser sends Last-Event-ID; it wins over the page's ?after=."""
    channel = new_channel("resume")
    for cursor in range(1, 6):
        publish(comet, channel, {"name": "m", "data": f"m{cursor}"}, cursor=cursor)
    with sse_client(comet, f"/sse/{channel}?after=1", {"Last-Event-ID": "3"}) as events:
        assert [(e.id, e.data) for e in (next(events), next(events))] == [("4", "m4"),
                                                                           ("5", "m5")]
        publish(comet, channel, {"name": "m", "data": "m6"}, cursor=6)
        assert (next(events).id) == "6"
    with sse_client(comet, f"/sse/{channel}?after=4") as events:  # no header: ?after=
        assert next(events).id == "5"
    with RawStream(comet, f"/sse/{channel}?after=5", headers={"Last-Event-ID": ""}) as raw:
        assert raw.next_frame() == RETRY_FRAME  # an empty header does not count:
        assert raw.next_event() == b"id: 6\nevent: m\ndata: m6\n\n"  # ?after= does


def test_replay_then_history_then_live_without_duplicates(comet: ServerProcess) -> None:
    """Resuming at 10: the view's replay (11-13), then what the server's history holds
    past the replay (14, 15), then live events; a publish at or below the resume point
    is never sent, signals always are."""
    channel = new_channel("replay")
    for cursor in (9, 12, 13, 14, 15):  # the server's short history
        publish(comet, channel, {"name": "hist", "data": f"h{cursor}"}, cursor=cursor)
    with RawStream(comet, f"/sse/{channel}?replay=3",
                   headers={"Last-Event-ID": "10"}) as stream:
        opening = [stream.next_frame() for _ in range(6)]
        assert opening == [
            RETRY_FRAME,
            b"id: 11\nevent: replayed\ndata: replayed 11\n\n",
            b"id: 12\nevent: replayed\ndata: replayed 12\n\n",
            b"id: 13\nevent: replayed\ndata: replayed 13\n\n",
            b"id: 14\nevent: hist\ndata: h14\n\n",
            b"id: 15\nevent: hist\ndata: h15\n\n",
        ]
        publish(comet, channel, {"name": "dup", "data": "13 again"}, cursor=13)
        publish(comet, channel, {"name": "dup", "data": "15 again"}, cursor=15)
        publish(comet, channel, {"name": "sig", "data": "a signal"})
        publish(comet, channel, {"name": "live", "data": "l16"}, cursor=16)
        publish(comet, channel, {"name": "dup", "data": "14 again"}, cursor=14)
        publish(comet, channel, {"name": "live", "data": "l17"}, cursor=17)
        # The hub hands batches over in order: a duplicate would come before these.
        assert stream.next_event() == b"event: sig\ndata: a signal\n\n"
        assert stream.next_event() == b"id: 16\nevent: live\ndata: l16\n\n"
        assert stream.next_event() == b"id: 17\nevent: live\ndata: l17\n\n"
        assert ids_of([stream.raw]) == [str(n).encode() for n in range(11, 18)]
        assert b"again" not in stream.raw


def test_history_past_the_cursor_is_sent_on_connect(comet: ServerProcess) -> None:
    """Events published between a page's load and its stream's start are not lost."""
    channel = new_channel("gap")
    for cursor in (1, 2, 3):
        publish(comet, channel, f"m{cursor}", cursor=cursor)
    publish(comet, channel, "a signal: not kept")
    with sse_client(comet, f"/sse/{channel}?after=1") as events:
        assert [(e.id, e.data) for e in (next(events), next(events))] == [
            ("2", '"m2"'), ("3", '"m3"')]
        publish(comet, channel, "m4", cursor=4)
        assert (next(events).id, ) == ("4",)


def test_resync_sends_one_resync_event_then_goes_live(comet: ServerProcess) -> None:
    """When the gap is too large to replay the client gets one ``resync`` event
    (no id: it is no resume point), then the live stream."""
    channel = new_channel("resync")
    with RawStream(comet, f"/sse/{channel}?resync=1",
                   headers={"Last-Event-ID": "500"}) as stream:
        assert stream.next_frame() == RETRY_FRAME
        assert stream.next_frame() == b"event: resync\ndata: {}\n\n"
        publish(comet, channel, {"name": "m", "data": "after"}, cursor=501)
        assert stream.next_event() == b"id: 501\nevent: m\ndata: after\n\n"
        assert stream.raw.count(b"resync") == 1
    with sse_client(comet, f"/sse/{channel}?resync=1",
                    {"Last-Event-ID": "501"}) as events:
        event = next(events)
        assert (event.event, event.data, event.id) == ("resync", "{}", "")


# -- heartbeats (shared server) -------------------------------------------------------------


def test_an_idle_stream_gets_heartbeats(comet: ServerProcess) -> None:
    """With ?heartbeat=0.3 an idle stream gets ``: ping`` comments, paced (not a flood),
    and nothing else."""
    channel = new_channel("idle")
    with RawStream(comet, f"/sse/{channel}?heartbeat=0.3") as stream:
        assert stream.next_frame() == RETRY_FRAME
        t0 = time.monotonic()
        pings = [stream.next_frame() for _ in range(3)]
        elapsed = time.monotonic() - t0
    assert pings == [PING_FRAME] * 3
    assert elapsed >= 0.6, elapsed  # 3 beats of 0.3 s (the first may come at 0.3 s)
    assert stream.buffer == b""


def test_a_busy_stream_is_not_pinged_needlessly(comet: ServerProcess) -> None:
    """Events published back to back for five heartbeat periods: a ping may only follow
    a silence (a stalled machine), never come right behind an event."""
    heartbeat = 0.5
    channel = new_channel("busy")
    pings: list[float] = []  # for each ping, the silence before it as the client saw it
    with RawStream(comet, f"/sse/{channel}?heartbeat={heartbeat}") as stream:
        assert stream.next_frame() == RETRY_FRAME
        last = time.monotonic()
        end = last + 5 * heartbeat
        cursor = 0
        while time.monotonic() < end:
            cursor += 1
            publish(comet, channel, cursor, cursor=cursor)
            while (frame := stream.next_frame()) == PING_FRAME:
                pings.append(stream.times[-1] - last)
                last = stream.times[-1]
            assert frame == b"id: %d\ndata: %d\n\n" % (cursor, cursor)
            last = stream.times[-1]
    assert cursor >= 10, cursor
    needless = [gap for gap in pings if gap < heartbeat / 2]
    assert not needless, f"pings {needless} s after an event (heartbeat {heartbeat} s)"


def test_a_ping_follows_a_write_within_one_heartbeat(comet: ServerProcess) -> None:
    """README: --stream-heartbeat is the "seconds without a write before an event
    stream gets a comment line".  An event written right after the stream opened is
    followed by a ping about one heartbeat later, not two (before the fix: up to 2x)."""
    heartbeat = 1.0  # long enough that a late timer on a busy machine is no failure
    channel = new_channel("silence")
    with RawStream(comet, f"/sse/{channel}?heartbeat={heartbeat}") as stream:
        assert stream.next_frame() == RETRY_FRAME
        publish(comet, channel, "x", cursor=1)
        assert stream.next_frame() == b'id: 1\ndata: "x"\n\n'
        written = stream.times[-1]
        assert stream.next_frame() == PING_FRAME
        silence = stream.times[-1] - written
    assert 0.8 * heartbeat <= silence < 1.5 * heartbeat, f"{silence:.2f} s without a write"


# -- lifetime (shared server) -------------------------------------------------------------


def test_lifetime_ends_the_stream_cleanly_and_keeps_the_connection(
        comet: ServerProcess) -> None:
    """?lifetime=1: after about a second the stream ends with its last chunk (the
    browser reconnects), and the same connection serves the next request."""
    channel = new_channel("lifetime")
    t0 = time.monotonic()  # before the request: the lifetime (less 10%) counts from it
    stream = RawStream(comet, f"/sse/{channel}?lifetime=1")
    try:
        assert stream.next_frame() == RETRY_FRAME
        assert stream.rest() in ([], [PING_FRAME])
        elapsed = time.monotonic() - t0
        assert stream.complete, "cut without the last chunk"
        assert 0.9 <= elapsed < 5, elapsed
        assert stream.head.header("Connection") is None  # kept alive
        stream.sock.sendall(build_request("GET", "/hello"))
        assert read_response(stream.reader).body == b"hello"
        stream.sock.sendall(build_request("GET", f"/sse/{channel}?lifetime=0.3"))
        again = read_response(stream.reader)  # a second stream on the same connection
        assert again.complete and again.body.startswith(RETRY_FRAME)
    finally:
        stream.close()


def test_a_request_pipelined_behind_a_stream_is_served_after_it(comet: ServerProcess) -> None:
    """A stream reads nothing more while open; what was pipelined behind it is
    answered once it ended, in order."""
    channel = new_channel("pipelined")
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", f"/sse/{channel}?lifetime=0.5")
                     + build_request("GET", "/hello"))
        first = read_response(reader)
        assert first.complete and first.body.startswith(RETRY_FRAME)
        assert read_response(reader).body == b"hello"


def test_through_nginx_events_arrive_at_once(comet: ServerProcess, tmp_path: Path) -> None:
    """Behind docs/deployment.md's nginx (here its ``location /``, which buffers proxied
    responses), the stream's head, each event and the end of the stream reach the
    client as they are written.  (Debian's nginx 1.22 passed them on at once even
    without X-Accel-Buffering, so this does not prove that header is needed.)"""
    if not nginx.available():
        pytest.skip(f"{nginx.NGINX} is not installed")
    front = nginx.Nginx(tmp_path / "nginx", comet.port).start()
    try:
        channel = new_channel("nginx")
        with RawStream(front, f"/sse/{channel}?lifetime=3", timeout=10) as stream:
            assert stream.head.status == 200
            assert stream.next_frame() == RETRY_FRAME
            publish(comet, channel, {"name": "m", "data": "hop"}, cursor=1)
            t0 = time.monotonic()
            assert stream.next_event() == b"id: 1\nevent: m\ndata: hop\n\n"
            assert time.monotonic() - t0 < 2
            assert stream.rest() in ([], [PING_FRAME])
            assert stream.complete
    finally:
        front.stop()


def test_the_client_library_sees_the_end_and_can_resume(comet: ServerProcess) -> None:
    """An SSE client reads to the end of a stream that reached its lifetime, then
    resumes from the last id it saw (what a browser does)."""
    channel = new_channel("reconnect")
    seen: list[ServerSentEvent] = []
    with sse_client(comet, f"/sse/{channel}?lifetime=1") as events:
        publish(comet, channel, {"name": "m", "data": "one"}, cursor=1)
        seen.extend(events)  # ends by itself
    assert [(e.id, e.data) for e in seen] == [("1", "one")]
    publish(comet, channel, {"name": "m", "data": "two"}, cursor=2)
    with sse_client(comet, f"/sse/{channel}", {"Last-Event-ID": seen[-1].id}) as events:
        assert (next(events).data) == "two"


def test_server_options_give_the_default_lifetime_and_heartbeat(start_server) -> None:
    """Without ?lifetime= or ?heartbeat= the server's --stream-lifetime (less up to 10%
    jitter) and --stream-heartbeat apply."""
    server = start_server("--stream-lifetime", "1", "--stream-heartbeat", "0.3")
    t0 = time.monotonic()
    with RawStream(server, "/sse/defaults") as stream:
        assert stream.next_frame() == RETRY_FRAME
        frames = stream.rest()
        elapsed = time.monotonic() - t0
        assert stream.complete
    assert 0.9 <= elapsed < 5, elapsed
    assert frames and set(frames) == {PING_FRAME}, frames
    assert len(frames) <= 3, frames  # 1 s of 0.3 s beats


def test_clients_that_leave_are_forgotten_at_once(start_server) -> None:
    """Streams whose clients close or reset are dropped from the hub and the counters
    at once, the others stay."""
    server = start_server()
    streams = [RawStream(server, "/sse/leaving") for _ in range(5)]
    try:
        for stream in streams:
            assert stream.next_frame() == RETRY_FRAME
        server.wait_stats(lambda s: s["event_streams"] == 5, message="five streams")
        streams[0].close()
        streams[1].sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset
        streams[1].close()
        streams[2].sock.shutdown(socket.SHUT_WR)  # half-close: it is gone too
        server.wait_stats(lambda s: s["event_streams"] == 2 and s["streaming"] == 2
                          and s["connections"] <= 3, timeout=3, message="three gone")
        publish(server, "leaving", {"name": "m", "data": "to those left"}, cursor=1)
        for stream in streams[3:]:
            assert stream.next_event() == b"id: 1\nevent: m\ndata: to those left\n\n"
    finally:
        for stream in streams:
            stream.close()


def test_an_idle_stream_outlives_the_connection_timeouts(start_server) -> None:
    """A stream that writes nothing for longer than --keepalive-timeout and
    --head-timeout is not taken for an idle or stalled connection: it runs its whole
    lifetime and ends cleanly."""
    server = start_server("--keepalive-timeout", "1", "--head-timeout", "1")
    t0 = time.monotonic()
    with RawStream(server, "/sse/quiet?lifetime=2.5&heartbeat=10") as stream:
        assert stream.rest() == [RETRY_FRAME]
        assert stream.complete
    assert time.monotonic() - t0 >= 2.25


# -- a client that does not read: cut, bounded memory (own server) ----------------------------

BIG = 60_000  # bytes of data per event (a frame is a little more)
ROUNDS, WARM_UP = 12, 6  # the allocator settles within the first rounds


def test_a_client_that_never_reads_is_cut_and_memory_stays_flat(start_server) -> None:
    """With --max-stream-buffer 65536 a stream whose client reads nothing is cut once
    that much piles up unread (the stats count it, the connection closes), another
    stream on the same channel gets every event, and round after round of that leaves
    the connections and the RSS where they were.

    The big events are signals (no cursor), so the hub's history does not fill with
    them and what the RSS shows is the streams' own cost."""
    server = start_server("--max-stream-buffer", "65536", "--no-access-log")
    channel = "slow"
    good = RawStream(server, f"/sse/{channel}", timeout=30, keep_raw=False)
    assert good.next_frame() == RETRY_FRAME
    got: list[int] = []
    failed: list[BaseException] = []

    def read_all() -> None:
        try:
            while (frame := good.next_event()) is not None:
                got.append(int(frame[len(b"event: big\ndata: "):][:6]))
        except BaseException as exc:  # reported by the test
            failed.append(exc)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    sent = 0
    rss: list[int] = []
    t0 = time.monotonic()
    try:
        for round_ in range(ROUNDS):
            slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
            slow.settimeout(30)
            slow.connect(("127.0.0.1", server.port))
            slow.sendall(build_request("GET", f"/sse/{channel}"))
            server.wait_stats(lambda s: s["event_streams"] == 2, message="the slow stream")
            for _ in range(400):  # about 50 events of 60 kB fill the kernel's buffers
                sent += 1
                publish(server, channel, {"name": "big", "data": f"{sent:06d}" + "x" * BIG})
                stats = server.stats()
                if stats["event_streams"] == 1:
                    break
            assert stats["event_streams_cut_slow"] == round_ + 1, stats
            assert stats["streaming"] == 1, stats
            assert is_closed(slow, timeout=10), "the slow stream was not closed"
            slow.close()
            wait_until(lambda n=sent: len(got) >= n or failed, 30, "the good stream to catch up")
            assert not failed, failed
            assert got == list(range(1, sent + 1))  # every event, in order, once
            server.wait_stats(lambda s: s["connections"] <= 2,  # the good one, the stats'
                              message="the slow connection forgotten")
            rss.append(server.rss_kib())
        assert server.stats()["event_streams"] == 1
        # A cut stream's leftovers (its connection, ~125 kB unsent) kept per round
        # would add up to more than this over the rounds after the warm-up.
        growth = rss[-1] - rss[WARM_UP - 1]
        assert growth < 768, f"RSS after each round (KiB): {rss}"
    finally:
        good.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader up
        reader.join(10)
        good.close()
    assert time.monotonic() - t0 < 60
    assert "Traceback" not in server.stderr()


def test_a_catch_up_larger_than_the_bound_is_cut_and_resuming_converges(
        start_server) -> None:
    """A client resuming behind 6 MB of history (more than the kernel takes at once
    plus --max-stream-buffer) is cut part-way; resuming each time from the last
    complete event it got, it ends up with every event once, in order."""
    server = start_server("--max-stream-buffer", "65536", "--no-access-log")
    channel = "catchup"
    total = 100
    for cursor in range(1, total + 1):
        publish(server, channel, {"name": "big", "data": f"{cursor:06d}" + "x" * BIG},
                cursor=cursor)
    ids: list[bytes] = []
    connections = cut = 0
    while (not ids or ids[-1] != b"%d" % total) and connections < 20:
        connections += 1
        last = ids[-1].decode() if ids else "0"
        with RawStream(server, f"/sse/{channel}?lifetime=0.5", timeout=30,
                       headers={"Last-Event-ID": last}) as stream:
            frames = stream.rest()
            assert frames[0] == RETRY_FRAME
            ids.extend(ids_of(frames))
            cut += not stream.complete
    assert ids == [b"%d" % n for n in range(1, total + 1)]
    assert cut >= 1 and connections == cut + 1, (connections, cut)
    stats = server.wait_stats(lambda s: s["event_streams"] == 0 and s["streaming"] == 0,
                              message="every stream gone")
    assert stats["event_streams_cut_slow"] == cut


# -- the server stopping (own server) -----------------------------------------------------------


def test_sigterm_ends_every_stream_with_its_last_chunk_and_exits_zero(start_server) -> None:
    """SIGTERM with open streams: each ends cleanly (last chunk; HTTP/1.0 by a close),
    and the process exits 0 long before its 30 s grace period."""
    server = start_server("--shutdown-grace", "30")
    streams = [RawStream(server, f"/sse/drain-{i}") for i in range(3)]
    old = RawStream(server, "/sse/drain-10", version="HTTP/1.0")
    try:
        for stream in [*streams, old]:
            assert stream.next_frame() == RETRY_FRAME
        server.wait_stats(lambda s: s["event_streams"] == 4, message="four streams")
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        for stream in streams:
            assert stream.rest() == []
            assert stream.complete, "a stream was cut instead of ended"
        assert old.rest() == [] and old.ended
        code = server.proc.wait(timeout=10)
        assert time.monotonic() - t0 < 5
        assert code == 0, server.stderr()[-3000:]
    finally:
        for stream in [*streams, old]:
            stream.close()
    assert "Traceback" not in server.stderr()


# -- an event that cannot be rendered (own server: its log is read) -----------------------------


def test_an_event_that_cannot_be_rendered_is_left_out_and_logged_once(start_server) -> None:
    """``{"fail": true}`` makes the renderer raise: that event is left out of every
    stream (logged once for the batch, not once per stream), the streams go on with
    the next event, and a client resuming from before it is served, not refused with
    a 500 (which EventSource would never retry)."""
    server = start_server()
    channel = "poison"
    streams = [RawStream(server, f"/sse/{channel}") for _ in range(3)]
    try:
        for stream in streams:
            assert stream.next_frame() == RETRY_FRAME
        publish(server, channel, {"name": "m", "data": "fine"}, cursor=1)
        for stream in streams:
            assert stream.next_event() == b"id: 1\nevent: m\ndata: fine\n\n"
        publish(server, channel, {"fail": True}, cursor=2)
        publish(server, channel, {"name": "m", "data": "after"}, cursor=3)
        for stream in streams:
            assert stream.next_event() == b"id: 3\nevent: m\ndata: after\n\n"
        with sse_client(server, f"/sse/{channel}?after=1") as events:  # from the history
            assert next(events).id == "3"
        server.wait_stats(lambda s: s["event_streams"] == 3, message="the streams still open")
        assert requests.get(server.url("/hello"), timeout=10).text == "hello"
    finally:
        for stream in streams:
            stream.close()
    log = server.stderr()
    # Once for the live batch (three streams), once for the resuming client's catch-up.
    assert log.count("error framing an event for the event streams") == 2, log[-3000:]
    assert log.count("RuntimeError: this event cannot be rendered") == 2, log[-3000:]


# -- the broker reconnecting (own server, own Redis) --------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test's own on a free port (the shared one is left alone)."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.alive, 10, "the private Redis")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def test_a_broker_reconnect_ends_streams_so_clients_resume(tmp_path: Path) -> None:
    """Redis restarting means events may have been missed: once the server has
    subscribed again every stream ends (cleanly: the client resumes from its last id
    and the view replays from the store), and the connection serves on."""
    redis_server = PrivateRedis(tmp_path)
    redis_server.start()
    server = None
    try:
        env = {**SERVER_ENV, "COMET_BROKER": f"redis://127.0.0.1:{redis_server.port}/0"}
        server = launch(runcomet_argv(), tmp_path, "broker", env=env)
        stream = RawStream(server, "/sse/brokered")
        try:
            assert stream.next_frame() == RETRY_FRAME
            publish(server, "brokered", {"name": "m", "data": "via redis"}, cursor=1)
            assert stream.next_event() == b"id: 1\nevent: m\ndata: via redis\n\n"
            redis_server.stop()
            redis_server.start()
            t0 = time.monotonic()
            assert stream.rest() in ([], [PING_FRAME])  # the default lifetime is 300 s
            assert stream.complete, "cut instead of ended"
            assert time.monotonic() - t0 < 10
            stream.sock.sendall(build_request("GET", "/hello"))
            assert read_response(stream.reader).body == b"hello"
        finally:
            stream.close()
        server.wait_stats(lambda s: s["event_streams"] == 0, message="the stream gone")
        with RawStream(server, "/sse/brokered", headers={"Last-Event-ID": "1"}) as again:
            assert again.next_frame() == RETRY_FRAME  # the resumed stream is live again
            publish(server, "brokered", {"name": "m", "data": "after"}, cursor=2)
            assert again.next_event() == b"id: 2\nevent: m\ndata: after\n\n"
        assert "Traceback" not in server.stderr()
    finally:
        if server is not None:
            server.close()
        redis_server.stop()


# -- the blocking fallback (Django's test client, no comet server) --------------------------------


@pytest.mark.urls("tests.serverapp.urls")
def test_blocking_fallback_gives_the_same_framing() -> None:
    """Under any other server ``event_stream`` holds its thread, with the same bytes:
    retry first, history past the cursor, live events with ids, signals without, pings
    when idle, and the end after its lifetime."""
    channel = new_channel("blocking")
    hub = get_hub()
    publish_in_process(channel, {"name": "m", "data": "old"}, cursor=1)
    publish_in_process(channel, {"name": "m", "data": "kept"}, cursor=2)
    base = hub.following()

    def publish_when_following() -> None:
        wait_until(lambda: hub.following() > base, 10, "the stream to follow")
        publish_in_process(channel, {"name": "m", "data": "line1\r\nline2"}, cursor=3)
        publish_in_process(channel, {"typing": True})  # at once: not lost in between
        publish_in_process(channel, {"name": "m", "data": "old again"}, cursor=2)

    publisher = threading.Thread(target=publish_when_following)
    t0 = time.monotonic()
    publisher.start()
    try:
        response = Client().get(f"/sse/{channel}?lifetime=1.5&heartbeat=0.3",
                                headers={"Last-Event-ID": "1"})
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/event-stream")
        assert response["Cache-Control"] == "no-store"
        assert response["X-Accel-Buffering"] == "no"
        body = b"".join(response.streaming_content)
    finally:
        publisher.join(10)
    elapsed = time.monotonic() - t0
    assert 1.35 <= elapsed < 6, elapsed  # 1.5 s (less up to 10%, should it get jitter)
    frames = [frame + b"\n\n" for frame in body.split(b"\n\n") if frame]
    events = [frame for frame in frames if frame != PING_FRAME]
    assert events == [
        RETRY_FRAME,
        b"id: 2\nevent: m\ndata: kept\n\n",
        b"id: 3\nevent: m\ndata: line1\ndata: line2\n\n",
        b'data: {"typing": true}\n\n',
    ]
    assert PING_FRAME in frames
    assert hub.following() == base  # the thread's follower is gone with the stream


@pytest.mark.urls("tests.serverapp.urls")
def test_blocking_fallback_with_a_broker_keeps_events_published_together(
        tmp_path: Path) -> None:
    """Under gunicorn with COMET_BROKER a stream waits on Redis itself: two events
    published together (two users posting at once) must both reach it."""
    import redis

    from comet_server.push.default_hub import set_hub
    from comet_server.push.events import Event
    from comet_server.push.hub import Hub
    from comet_server.push.redis_broker import PREFIX, RedisBroker

    redis_server = PrivateRedis(tmp_path)
    redis_server.start()
    try:
        url = f"redis://127.0.0.1:{redis_server.port}/0"
        set_hub(Hub(broker=RedisBroker(url)))  # the fresh_hub fixture puts its own back
        client = redis.Redis.from_url(url)
        channel = new_channel("brokered-blocking")

        def publish_two_at_once() -> None:
            wait_until(lambda: client.pubsub_numsub(PREFIX + channel)[0][1] == 1, 10,
                       "the stream to subscribe")
            pipe = client.pipeline(transaction=True)
            for cursor in (1, 2):
                event = Event(channel, {"name": "m", "data": f"e{cursor}"}, cursor)
                pipe.publish(PREFIX + channel, event.to_json())
            pipe.execute()

        publisher = threading.Thread(target=publish_two_at_once)
        publisher.start()
        try:
            response = Client().get(f"/sse/{channel}?lifetime=1&heartbeat=5",
                                    headers={"Last-Event-ID": "0"})
            body = b"".join(response.streaming_content)
        finally:
            publisher.join(10)
        client.close()
    finally:
        redis_server.stop()
    assert ids_of([body]) == [b"1", b"2"], body


@pytest.mark.urls("tests.serverapp.urls")
@pytest.mark.parametrize("broker", [False, True], ids=["hub", "redis"])
def test_blocking_fallback_pings_only_after_a_heartbeat_of_silence(
        tmp_path: Path, broker: bool) -> None:
    """A 1 s stream with a 5 s heartbeat has nothing to ping about."""
    from comet_server.push.default_hub import set_hub
    from comet_server.push.hub import Hub
    from comet_server.push.redis_broker import RedisBroker

    redis_server = PrivateRedis(tmp_path) if broker else None
    try:
        if redis_server is not None:
            redis_server.start()
            set_hub(Hub(broker=RedisBroker(f"redis://127.0.0.1:{redis_server.port}/0")))
        response = Client().get(f"/sse/{new_channel('quiet')}?lifetime=1&heartbeat=5")
        body = b"".join(response.streaming_content)
    finally:
        if redis_server is not None:
            redis_server.stop()
    assert body == RETRY_FRAME

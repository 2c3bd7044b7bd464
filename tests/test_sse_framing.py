"""Unit tests of the text/event-stream framing (``comet_server.push.sse``) and of what
``event_stream`` makes of events and of its opening: no server.

What a client makes of the bytes is checked with httpx-sse's decoders, which follow the
WHATWG rules (lines end at CRLF, CR or LF; one leading space after the colon is
dropped; data lines are joined with LF; ``id`` persists as the last event id).
"""

from __future__ import annotations

import re

import pytest
from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from hypothesis import given
from hypothesis import strategies as st

from comet_server.push.events import Event
from comet_server.push.sse import ServerSentEvent, comment, retry_field
from comet_server.push.waits import FollowEvents, StreamEnd
from comet_server.responses import PING, RESYNC, _Frames, event_stream


def client_parse(stream: bytes, pieces: int = 1) -> list[tuple[str, str, str, int | None]]:
    """(event, data, last event id, retry) of every message a client dispatches,
    the bytes fed in ``pieces`` parts (a split may fall inside a UTF-8 sequence)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    lines, sse = SSELineDecoder(), SSEDecoder()
    size = max(1, len(stream) // pieces)
    out = []
    for start in range(0, len(stream), size):
        for line in lines.decode(decoder.decode(stream[start:start + size])) or []:
            event = sse.decode(line)
            if event is not None and (event.data or event.retry is not None):
                out.append((event.event, event.data, event.id, event.retry))
    assert decoder.decode(b"", final=True) == ""
    return out


def normalised(text: str) -> str:
    return re.sub(r"\r\n|\r", "\n", text)


# -- ServerSentEvent -----------------------------------------------------------------------


def test_fields_in_order_and_the_blank_line() -> None:
    assert ServerSentEvent("x").encode() == b"data: x\n\n"
    assert ServerSentEvent("x", event="chat", id="42").encode() == (
        b"id: 42\nevent: chat\ndata: x\n\n")


@pytest.mark.parametrize(("data", "lines"), [
    ("a\nb", [b"a", b"b"]),
    ("a\r\nb", [b"a", b"b"]),
    ("a\rb", [b"a", b"b"]),
    ("a\r\n\r\nb", [b"a", b"", b"b"]),
    ("a\n\rb", [b"a", b"", b"b"]),  # LF then CR: two breaks, not one
    ("a\n", [b"a", b""]),
    ("", [b""]),
    (" lead", [b" lead"]),
])
def test_data_is_split_on_every_line_break(data: str, lines: list[bytes]) -> None:
    encoded = ServerSentEvent(data).encode()
    assert encoded == b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"
    assert b"\r" not in encoded


def test_utf8_on_the_wire() -> None:
    text = "héllo 🎉 日本"
    assert ServerSentEvent(text, event="ü").encode() == f"event: ü\ndata: {text}\n\n".encode()


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b"])
@pytest.mark.parametrize("field", ["event", "id"])
def test_event_and_id_refuse_line_breaks_and_nul(field: str, bad: str) -> None:
    with pytest.raises(ValueError):
        ServerSentEvent("x", **{field: bad})


def test_data_must_be_text() -> None:
    with pytest.raises(TypeError):
        ServerSentEvent(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ServerSentEvent("x", event=5)  # type: ignore[arg-type]


def test_retry_and_comments() -> None:
    assert retry_field(3000) == b"retry: 3000\n\n"
    assert retry_field(0) == b"retry: 0\n\n"
    with pytest.raises(ValueError):
        retry_field(-1)
    assert comment("ping") == PING == b": ping\n\n"
    assert comment() == b":\n\n"
    for bad in ("a\nb", "a\rb", "a\x00"):
        with pytest.raises(ValueError):
            comment(bad)
    assert client_parse(comment("ping") + comment()) == []  # ignored by clients


@given(data=st.text(), event=st.none() | st.text(min_size=1).filter(
    lambda s: not re.search(r"[\r\n\x00]", s)),
    cursor=st.none() | st.integers(min_value=0, max_value=2**63), pieces=st.integers(1, 7))
def test_a_client_gets_back_what_was_framed(data: str, event: str | None, cursor: int | None,
                                            pieces: int) -> None:
    """Any text survives, line breaks normalised to LF (what the spec gives a client),
    whatever the chunking of the bytes."""
    message = ServerSentEvent(data, event=event, id=None if cursor is None else str(cursor))
    stream = retry_field(1500) + message.encode() + PING
    parsed = client_parse(stream, pieces)
    expected_id = "" if cursor is None else str(cursor)
    got = [p for p in parsed if p[3] is None]
    assert parsed[0][3] == 1500
    if data == "":  # "data: " alone: dispatched with empty data by browsers; this
        return      # decoder cannot tell it from no data, so it is not checked here
    assert got == [(event or "message", normalised(data), expected_id, None)]


# -- what event_stream makes of an event (_Frames) ------------------------------------------------


def render_as_is(event: Event) -> ServerSentEvent | str | None:
    return event.payload


def test_a_cursored_event_carries_its_cursor_as_id_and_a_signal_none() -> None:
    frames = _Frames(render_as_is)
    assert frames(Event("c", ServerSentEvent("x", event="m"), 7)) == (
        b"id: 7\nevent: m\ndata: x\n\n")
    assert frames(Event("c", ServerSentEvent("x", event="m"))) == b"event: m\ndata: x\n\n"
    assert frames(Event("c", "plain", 8)) == b"id: 8\ndata: plain\n\n"
    assert frames(Event("c", None, 9)) == b""  # skipped: not even its id


def test_a_renderer_may_not_set_the_id_or_return_anything_else() -> None:
    frames = _Frames(render_as_is)
    with pytest.raises(ValueError):
        frames(Event("c", ServerSentEvent("x", id="1"), 1))
    with pytest.raises(TypeError):
        frames(Event("c", b"bytes", 1))
    with pytest.raises(TypeError):
        frames(Event("c", {"a": 1}, 1))


def test_streams_of_one_renderer_share_one_frame_function() -> None:
    """The server memoises a batch's frames under the frame function: two streams of
    one view must get the same one, and a renderer that cannot be a key is refused in
    the view, not at the first event."""
    def frame_of(response) -> object:
        coroutine = response.comet_coroutine()
        next(coroutine)
        wait = next(coroutine)
        coroutine.close()
        return wait.frame

    first = frame_of(event_stream("c", after=None, render=render_as_is))
    second = frame_of(event_stream("d", after=3, render=render_as_is))
    assert first is second
    assert frame_of(event_stream("c", after=None, render=render_payload)) is not first

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self, event: Event) -> str:
            return "x"

    with pytest.raises(TypeError, match="hashable"):
        event_stream("c", after=None, render=Unhashable())


# -- event_stream's opening and its end ----------------------------------------------------------


def render_payload(event: Event) -> ServerSentEvent | str | None:
    return ServerSentEvent(str(event.payload), event="m")


def test_the_opening_is_retry_first_resync_then_replay() -> None:
    closed: list[StreamEnd | None] = []
    response = event_stream(
        ["c", "d"], after=10, render=render_payload,
        replay=[Event("c", "r11", 11), Event("c", "sig"), Event("c", "r12", 12)],
        resync=True, first=[ServerSentEvent("snap", event="snapshot")], retry=2.5,
        lifetime=60, heartbeat=5, on_close=closed.append)
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"] == "no-store"
    assert response["X-Accel-Buffering"] == "no"
    coroutine = response.comet_coroutine()
    opening = next(coroutine)
    assert opening == (b"retry: 2500\n\n" + b"event: snapshot\ndata: snap\n\n" + RESYNC.encode()
                       + b"id: 11\nevent: m\ndata: r11\n\n" + b"event: m\ndata: sig\n\n"
                       + b"id: 12\nevent: m\ndata: r12\n\n")
    wait = next(coroutine)
    assert isinstance(wait, FollowEvents)
    assert (wait.channels, wait.after, wait.duration, wait.heartbeat, wait.ping) == (
        ("c", "d"), 12, 60, 5, PING)
    assert closed == []
    with pytest.raises(StopIteration):
        coroutine.send(StreamEnd.LIFETIME)
    assert closed == [StreamEnd.LIFETIME]  # the server ended it: the client comes back


@pytest.mark.parametrize(("after", "replay", "expected"), [
    (None, [], None),
    (5, [], 5),
    (5, [Event("c", "old", 3)], 5),  # a replay behind the cursor does not move it back
    (None, [Event("c", "x", 4)], 4),
    (5, [Event("c", "signal")], 5),
])
def test_the_stream_follows_from_the_last_replayed_cursor(after, replay, expected) -> None:
    coroutine = event_stream("c", after=after, render=render_payload,
                             replay=replay).comet_coroutine()
    next(coroutine)
    wait = next(coroutine)
    assert isinstance(wait, FollowEvents) and wait.after == expected
    coroutine.close()


def test_retry_spread_draws_each_streams_retry_around_the_mean() -> None:
    """Streams opened with a spread do not all tell their browsers the same pause."""
    def retry_ms() -> int:
        coroutine = event_stream("c", after=None, render=render_payload, retry=3.0,
                                 retry_spread=0.5).comet_coroutine()
        opening = next(coroutine)
        coroutine.close()
        return int(opening.split(b"\n", 1)[0].removeprefix(b"retry: "))

    drawn = {retry_ms() for _ in range(50)}
    assert all(1500 <= ms <= 4500 for ms in drawn)
    assert len(drawn) > 10
    with pytest.raises(ValueError):
        event_stream("c", after=None, render=render_payload, retry_spread=1.0)


def test_on_close_runs_once_when_the_client_goes_away() -> None:
    closed: list[StreamEnd | None] = []
    coroutine = event_stream("c", after=None, render=render_payload,
                             on_close=closed.append).comet_coroutine()
    next(coroutine)
    next(coroutine)
    coroutine.close()  # what the server does when the connection drops
    coroutine.close()
    assert closed == [None]

"""In-process tests of a response's HTTP framing (``Responder``) and of the one
coroutine driver that the server and the blocking fallback share."""

from __future__ import annotations

import httptools
import pytest

from comet_server.protocol import http1
from comet_server.protocol.responder import Responder, ResponseState
from comet_server.push.hub import Hub
from comet_server.push.waits import CoroutineDriver, Sleep, WaitForEvents, iterate_blocking


class Sink:
    """Collects what a responder writes, as the connection would send it."""

    def __init__(self) -> None:
        self.data = b""
        self.ended: bool | None = None  # keep-alive flag of end()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def end(self, keep_alive: bool, listener: Responder | None) -> None:
        self.ended = keep_alive
        if listener is not None:
            listener.delivered(True)

    def close(self) -> None:
        self.closed = True


def request(method: str = "GET", version: tuple[int, int] = (1, 1),
            keep_alive: bool = True) -> http1.Request:
    return http1.Request(method, b"/x", version, [], b"", keep_alive)


def parse(raw: bytes) -> dict:
    """Parse a response with llhttp, as a client would."""
    out: dict = {"headers": {}, "body": b"", "complete": False}

    class Protocol:
        def on_header(self, name: bytes, value: bytes) -> None:
            out["headers"][name.decode().lower()] = value.decode()

        def on_body(self, body: bytes) -> None:
            out["body"] += body

        def on_message_complete(self) -> None:
            out["complete"] = True

    parser = httptools.HttpResponseParser(Protocol())
    parser.feed_data(raw)
    out["status"] = parser.get_status_code()
    return out


def test_a_whole_body_goes_out_with_content_length_in_one_write():
    sink = Sink()
    responder = Responder(sink, request(), "127.0.0.1", log_enabled=False)
    responder.set_status("200 OK", [("Content-Type", "text/plain")])
    responder.finish(b"hello")
    parsed = parse(sink.data)
    assert parsed["status"] == 200 and parsed["body"] == b"hello" and parsed["complete"]
    assert parsed["headers"]["content-length"] == "5"
    assert sink.ended is True and responder.state is ResponseState.COMPLETE


def test_head_gets_the_length_get_would_have_and_no_body():
    sink = Sink()
    responder = Responder(sink, request("HEAD"), "127.0.0.1", log_enabled=False)
    responder.set_status("200 OK", [])
    responder.finish(b"hello")
    assert sink.data.endswith(b"Content-Length: 5\r\n\r\n")


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_bodiless_statuses_carry_no_length(status: str):
    sink = Sink()
    responder = Responder(sink, request(), "127.0.0.1", log_enabled=False)
    responder.set_status(status, [])
    responder.finish(b"")
    assert b"Content-Length" not in sink.data and sink.data.endswith(b"\r\n\r\n")


def test_a_stream_is_chunked_on_http11_and_ends_with_the_last_chunk():
    sink = Sink()
    responder = Responder(sink, request(), "127.0.0.1", log_enabled=False)
    responder.set_status("200 OK", [])
    responder.send(b"one")
    responder.send(b"")  # never an empty chunk mid-stream: that would end it
    responder.finish(b"two")
    parsed = parse(sink.data)
    assert parsed["headers"]["transfer-encoding"] == "chunked"
    assert parsed["body"] == b"onetwo" and parsed["complete"]
    assert sink.ended is True


def test_a_stream_to_http10_is_close_delimited():
    sink = Sink()
    responder = Responder(sink, request(version=(1, 0)), "127.0.0.1", log_enabled=False)
    responder.set_status("200 OK", [])
    responder.send(b"one")
    responder.finish(b"two")
    assert sink.data.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"Transfer-Encoding" not in sink.data and sink.data.endswith(b"\r\n\r\nonetwo")
    assert sink.ended is False  # the close ends the body


def test_http10_keep_alive_is_said_and_the_status_line_is_ours():
    sink = Sink()
    responder = Responder(sink, request(version=(1, 0)), "127.0.0.1", log_enabled=False)
    responder.set_status("200 OK", [])
    responder.finish(b"x")
    assert sink.data.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"Connection: keep-alive\r\n" in sink.data and sink.ended is True


def test_a_failure_before_anything_was_sent_is_a_500():
    sink = Sink()
    responder = Responder(sink, request(), "127.0.0.1", log_enabled=False)
    responder.set_status("200 OK", [("X-A", "1")])
    responder.fail()
    parsed = parse(sink.data)
    assert parsed["status"] == 500 and "x-a" not in parsed["headers"]


def test_a_failure_mid_stream_cuts_the_connection_without_the_last_chunk():
    sink = Sink()
    responder = Responder(sink, request(), "127.0.0.1", log_enabled=False)
    responder.set_status("200 OK", [])
    responder.send(b"partial")
    responder.fail()
    assert sink.closed and not sink.data.endswith(http1.LAST_CHUNK)
    assert responder.state is ResponseState.ABORTED


@pytest.mark.parametrize("status, headers", [
    ("200 OK\r\nSet-Cookie: a=1", []),
    ("2000 OK", []),
    ("200 OK", [("Connection", "close")]),  # hop-by-hop: the server's business
    ("200 OK", [("X-A", "1\r\nSet-Cookie: a=1")]),
    ("200 OK", [("Bad Name", "1")]),
    ("200 OK", [("Content-Length", "five")]),
])
def test_headers_that_would_corrupt_the_framing_are_refused(status, headers):
    responder = Responder(Sink(), request(), "127.0.0.1", log_enabled=False)
    with pytest.raises(ValueError):
        responder.set_status(status, headers)


def test_a_body_contradicting_its_content_length_is_refused_before_sending():
    sink = Sink()
    responder = Responder(sink, request(), "127.0.0.1", log_enabled=False)
    responder.set_status("200 OK", [("Content-Length", "3")])
    with pytest.raises(ValueError):
        responder.finish(b"hello")
    assert sink.data == b"" and responder.state is ResponseState.PENDING


# -- the one driver ---------------------------------------------------------------------


def coroutine():
    got = yield b"a"
    yield bytearray(b"b")
    yield memoryview(b"c")
    got = yield Sleep(0)
    yield b"" if got is None else b"unexpected"
    yield WaitForEvents(("d",), None, 0.01)
    yield b"z"


def test_the_driver_stops_at_each_wait_with_the_body_before_it():
    driver = CoroutineDriver(coroutine())
    body: list[bytes] = []
    assert driver.advance(None, body) == Sleep(0)
    assert body == [b"a", b"b", b"c"] and all(type(c) is bytes for c in body)
    body.clear()
    assert isinstance(driver.advance(None, body), WaitForEvents) and body == []
    assert driver.advance(None, body) is None and body == [b"z"]


def test_the_blocking_fallback_gives_the_same_bytes():
    assert b"".join(iterate_blocking(coroutine(), Hub())) == b"abcz"


def test_the_driver_refuses_what_is_neither_bytes_nor_a_wait():
    def bad():
        yield "text"

    with pytest.raises(TypeError, match="str"):
        CoroutineDriver(bad()).advance(None, [])
    with pytest.raises(TypeError, match="str"):
        list(iterate_blocking(bad(), Hub()))

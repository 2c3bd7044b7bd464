"""HTTP/1.x framing of the comet server seen on raw sockets: keep-alive, pipelining,
HTTP/1.0, HEAD, limits and application errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.helpers.http import (
    build_request,
    connect,
    exchange,
    is_closed,
    read_chunk,
    read_head,
    read_response,
)
from tests.helpers.proc import ServerProcess, launch, runcomet_argv

DEMO_BODY = (b"First content<br /> stage1<br /> stage2<br /> stage3<br /> "
             b"last_stage4<br /> ")


def assert_serves(server: ServerProcess) -> None:
    """The server still answers a fresh connection."""
    response = requests.get(server.url("/hello"), timeout=10)
    assert response.status_code == 200 and response.content == b"hello"


# -- keep-alive and pipelining --------------------------------------------------------


def test_keepalive_serves_several_requests_on_one_connection(comet: ServerProcess) -> None:
    """Browsers reuse connections; every answer must be framed so the next one parses."""
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        ports = set()
        for n in range(4):
            sock.sendall(build_request("GET", f"/echo?n={n}"))
            response = read_response(reader)
            assert response.status == 200 and response.framing == "length"
            assert response.json()["meta"]["QUERY_STRING"] == f"n={n}"
            ports.add(response.json()["meta"]["REMOTE_PORT"])
        sock.sendall(build_request("GET", "/plain-stream"))
        assert read_response(reader).body == b"part0;part1;part2;"
        sock.sendall(build_request("GET", "/hello"))
        assert read_response(reader).body == b"hello"
        assert ports == {str(sock.getsockname()[1])}  # one connection served them all


def test_pipelined_requests_are_answered_in_order(comet: ServerProcess) -> None:
    """Three requests in one write get three answers, in the order asked."""
    raw = (build_request("GET", "/echo?n=1") + build_request("GET", "/plain-stream")
           + build_request("POST", "/echo?n=3", body=b"abc"))
    first, second, third = exchange(comet.port, raw, count=3)
    assert first.status == 200 and first.json()["meta"]["QUERY_STRING"] == "n=1"
    assert second.status == 200 and second.body == b"part0;part1;part2;"
    assert third.status == 200 and third.json()["meta"]["QUERY_STRING"] == "n=3"
    assert third.json()["body_len"] == 3


def test_pipelined_request_waits_behind_a_parked_long_poll(comet: ServerProcess) -> None:
    """A request pipelined behind a parked one is answered after it, not lost or first."""
    channel = f"pipe-{uuid.uuid4().hex}"
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", f"/wait/{channel}?after=0&timeout=30")
                     + build_request("GET", "/hello"))
        comet.wait_stats(lambda s: s["waiters"] >= 1, message="the long-poll to park")
        assert not is_closed(sock, timeout=0.3)  # nothing answered yet, still open
        published = requests.post(comet.url(f"/pub/{channel}?cursor=1"), json={"n": 1},
                                  timeout=10)
        assert published.status_code == 200
        first = read_response(reader)
        second = read_response(reader)
    assert first.status == 200
    assert first.json() == {"events": [{"cursor": 1, "payload": {"n": 1}}], "after": 0}
    assert second.status == 200 and second.body == b"hello"


def test_pipelined_request_waits_behind_a_stream(comet: ServerProcess) -> None:
    """A request pipelined behind the chunked demo is answered after its 0-chunk."""
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", "/demo/") + build_request("GET", "/hello"))
        demo = read_response(reader)
        hello = read_response(reader)
    assert demo.complete and demo.body == DEMO_BODY
    assert hello.status == 200 and hello.body == b"hello"


def test_idle_keepalive_connection_is_closed_after_the_timeout(start_server) -> None:
    """--keepalive-timeout bounds how long an idle connection holds a slot."""
    server = start_server("--keepalive-timeout", "1")
    with connect(server.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", "/hello"))
        assert read_response(reader).body == b"hello"
        t0 = time.monotonic()
        assert is_closed(sock, timeout=5)
        assert 0.5 < time.monotonic() - t0 < 4


def test_large_body_and_expect_continue(comet: ServerProcess) -> None:
    """An upload of exactly the default limit (1 MiB) arrives whole;
    Expect: 100-continue gets its interim answer."""
    body = bytes(range(256)) * 4096
    response = exchange(comet.port, build_request("POST", "/echo", body=body))[0]
    assert response.json()["body_len"] == len(body)
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("POST", "/echo", headers={
            "Expect": "100-continue", "Content-Length": "4"}))
        interim = read_response(reader)
        assert interim.status == 100
        sock.sendall(b"abcd")
        final = read_response(reader)
    assert final.status == 200 and final.json()["body_len"] == 4


# -- HTTP/1.0 -------------------------------------------------------------------------


def test_http10_response_has_content_length(comet: ServerProcess) -> None:
    """An HTTP/1.0 client learns the body length from Content-Length, then the close."""
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
        response = read_response(reader)
        assert response.status == 200 and response.body == b"hello"
        assert is_closed(sock)
    assert response.header("Content-Length") == "5"


def test_http10_keepalive_response_has_content_length(comet: ServerProcess) -> None:
    """HTTP/1.0 keep-alive needs Content-Length, and the connection stays usable."""
    request = b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(request)
        first = read_response(reader)
        sock.sendall(request)
        second = read_response(reader)
    for response in (first, second):
        assert response.version == "HTTP/1.0" and response.status == 200
        assert response.header("Content-Length") == "5" and response.body == b"hello"


@pytest.mark.parametrize("extra", [b"", b"Connection: keep-alive\r\n"],
                         ids=["plain", "keep-alive"])
def test_http10_stream_is_close_delimited(comet: ServerProcess, extra: bytes) -> None:
    """HTTP/1.0 has no chunked coding: a stream is the bytes up to the close."""
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"GET /demo/ HTTP/1.0\r\n" + extra + b"\r\n")
        response = read_response(reader)
    assert response.status == 200
    assert response.header("Transfer-Encoding") is None
    assert response.header("Content-Length") is None
    assert (response.header("Connection") or "").lower() != "keep-alive"
    assert response.framing == "close" and response.body == DEMO_BODY


# -- HEAD -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/hello", "/plain-stream", "/boom"])
def test_head_has_content_length_and_no_body(comet: ServerProcess, path: str) -> None:
    """A HEAD answer is headers only; body bytes would be read as the next response."""
    get = exchange(comet.port, build_request("GET", path))[0]
    raw = build_request("HEAD", path) + build_request("GET", "/hello")
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(raw)
        head = read_response(reader, head=True)
        after = read_head(reader)  # fails if the HEAD body is still on the wire
        assert after.status == 200
    assert head.status == get.status
    assert head.header("Content-Length") == str(len(get.body))


# -- limits and malformed requests -----------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with small limits so the tests can cross them cheaply."""
    server = launch(runcomet_argv("--max-body-size", "1024", "--max-header-size", "1024"),
                    tmp_path_factory.mktemp("limited"), "limited")
    yield server
    server.terminate()


def test_body_within_limit_is_accepted(limited: ServerProcess) -> None:
    """The limit is not off by a mile: a body just under it is served."""
    response = exchange(limited.port, build_request("POST", "/echo", body=b"x" * 1000))[0]
    assert response.status == 200 and response.json()["body_len"] == 1000


def test_body_over_limit_is_413(limited: ServerProcess) -> None:
    """Content-Length above --max-body-size is refused before the app sees it."""
    with connect(limited.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("POST", "/echo", body=b"x" * 2000))
        response = read_response(reader)
        assert response.status == 413
        assert is_closed(sock)
    assert_serves(limited)


def test_chunked_body_over_limit_is_413(limited: ServerProcess) -> None:
    """A chunked body cannot sneak past the limit."""
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"800\r\n" + b"x" * 0x800 + b"\r\n0\r\n\r\n")
    assert exchange(limited.port, raw)[0].status == 413
    assert_serves(limited)


def test_head_over_limit_is_431(limited: ServerProcess) -> None:
    """A request head above --max-header-size gets 431 and the connection is closed."""
    with connect(limited.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", "/hello", headers={"X-Big": "y" * 2000}))
        response = read_response(reader)
        assert response.status == 431
        assert is_closed(sock)
    assert_serves(limited)


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET /hello HTTP/1.1\r\nHost: x\r\nthis line has no colon\r\n\r\n",
    b"GET /hello HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /hello NOTHTTP\r\nHost: x\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
], ids=["request-line", "header-no-colon", "version", "protocol", "bad-length"])
def test_malformed_request_is_400_and_server_goes_on(limited: ServerProcess, raw: bytes) -> None:
    """Bad input is the client's problem: 400, never a crash or a hang."""
    with connect(limited.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(raw)
        response = read_response(reader)
        assert response.status == 400
        assert is_closed(sock)
    assert_serves(limited)
    assert "Traceback" not in limited.stderr()


def test_corrupt_chunked_body_is_refused_and_server_goes_on(limited: ServerProcess) -> None:
    """A chunk size that is not hex ends the request with a client error.

    libevent answers 413 here (it files corrupt chunks with oversized ones); any 4xx
    and a closed connection is acceptable, a hang or a 5xx is not.
    """
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    with connect(limited.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(raw)
        response = read_response(reader)
        assert 400 <= response.status < 500
        assert is_closed(sock)
    assert_serves(limited)


# -- application errors ---------------------------------------------------------------


def test_view_error_is_500_and_connection_goes_on(comet: ServerProcess) -> None:
    """A view that raises gets a framed 500; the keep-alive connection stays usable."""
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", "/boom"))
        response = read_response(reader)
        assert response.status == 500 and response.complete
        sock.sendall(build_request("GET", "/hello"))
        assert read_response(reader).body == b"hello"
    assert_serves(comet)


def test_a_view_calling_sys_exit_gets_a_500_and_the_server_lives(comet: ServerProcess) -> None:
    """SystemExit from application code is that application's error, not a shutdown."""
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", "/exit"))
        assert read_response(reader).status == 500
    assert comet.proc.poll() is None
    assert_serves(comet)
    assert "a view must not stop the server" in comet.stderr()


def test_error_midstream_cuts_the_connection_without_terminator(comet: ServerProcess) -> None:
    """A stream that breaks must not look complete: no 0-chunk, the connection ends."""
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", "/boom-midstream") + build_request("GET", "/hello"))
        response = read_head(reader)
        assert response.status == 200
        assert response.header("Transfer-Encoding") == "chunked"
        assert read_chunk(reader, response) == b"first part"
        assert read_chunk(reader, response) is None
        assert not response.complete, "a broken stream ended with the 0-chunk"
        assert reader.read() == b""  # the pipelined /hello is not answered on it
    comet.wait_stats(lambda s: s["streaming"] == 0, message="the stream to be forgotten")
    assert_serves(comet)

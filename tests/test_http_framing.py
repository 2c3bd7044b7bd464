"""Request smuggling and strict framing (RFC 9112 §6.3, §7.1), black-box.

One table: each hostile (or borderline-valid) request, what a real ``runcomet``
answers to it directly, and what a client gets when it goes through Debian's nginx
configured as docs/deployment.md says.

Directly, every request is sent with ``GET /hello`` pipelined behind it in the same
write and the connection is read until EOF: a refused request gets exactly one
answer (the refusal, ``HTTP/1.1``, ``Connection: close``), the connection closes,
and the server's own counters show that nothing was served, so nothing after an
unframeable request is ever read as a request.  A request that must be accepted is
answered, and so is the pipelined one after it.

Through nginx the request is sent alone: either nginx refuses it itself (nothing
reaches us) or exactly one request reaches us, whatever we answer.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers import nginx
from tests.helpers.http import RawResponse, connect, read_head, read_response
from tests.helpers.proc import ServerProcess, launch, runcomet_argv

LIMIT = 1024  # --max-header-size and --max-body-size of the server under test
NEXT = b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def framing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A dedicated server (its counters are ours alone) with small limits."""
    server = launch(runcomet_argv("--max-body-size", str(LIMIT), "--max-header-size",
                                  str(LIMIT)), tmp_path_factory.mktemp("framing"), "framing")
    yield server
    server.terminate()


@pytest.fixture(scope="module")
def proxy(framing: ServerProcess,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[nginx.Nginx]:
    """nginx in front of ``framing`` with docs/deployment.md's proxy configuration."""
    if not nginx.available():
        pytest.skip(f"{nginx.NGINX} is not installed")
    front = nginx.Nginx(tmp_path_factory.mktemp("nginx"), framing.port).start()
    yield front
    front.stop()


# -- the table --------------------------------------------------------------------------

Check = Callable[[RawResponse], Any]


@dataclass(frozen=True)
class Case:
    id: str
    raw: bytes
    status: int  # our answer, direct
    answered: int = 0  # requests served directly (0: refused; 2: it and the pipelined one)
    check: Check | None = None  # more about our first answer, direct
    nginx: int | None = None  # the status a client gets through nginx (None: not tried)
    nginx_own: bool = True  # nginx answers itself; nothing reaches us


def post(*headers: str, body: bytes = b"", version: str = "1.1",
         method: str = "POST", target: str = "/echo") -> bytes:
    head = f"{method} {target} HTTP/{version}\r\n"
    if version == "1.1":
        head += "Host: x\r\n"
    return (head + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode("latin-1") + body


def get(*lines: bytes, target: bytes = b"/hello") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + b"".join(
        line + b"\r\n" for line in lines) + b"\r\n"


def chunked(body: bytes) -> bytes:
    return post("Transfer-Encoding: chunked", body=body)


HELLO_CHUNKED = b"5\r\nhello\r\n0\r\n\r\n"
SMUGGLED = b"GET /echo?smuggled HTTP/1.1\r\nX: x"  # a request hidden in a body


def echoed(length: int, method: str = "POST") -> Check:
    def check(response: RawResponse) -> None:
        data = response.json()
        assert (data["method"], data["body_len"]) == (method, length), data
    return check


def says_hello(response: RawResponse) -> None:
    assert response.body == b"hello"


def version_is(version: str) -> Check:
    def check(response: RawResponse) -> None:
        assert response.version == version
        assert response.body == b"hello"
    return check


CASES = [
    # -- Content-Length and Transfer-Encoding (RFC 9112 §6.3) --
    Case("CL+TE", post("Content-Length: 5", "Transfer-Encoding: chunked",
                       body=HELLO_CHUNKED), 400, nginx=400),
    Case("TE+CL", post("Transfer-Encoding: chunked", "Content-Length: 5",
                       body=HELLO_CHUNKED), 400, nginx=400),
    Case("two different CL", post("Content-Length: 5", "Content-Length: 6",
                                  body=b"hello!"), 400, nginx=400),
    Case("two identical CL", post("Content-Length: 5", "Content-Length: 5", body=b"hello"),
         400, nginx=400),
    Case("CL list 5, 5", post("Content-Length: 5, 5", body=b"hello"), 400, nginx=400),
    Case("CL -5", post("Content-Length: -5", body=b"hello"), 400, nginx=400),
    Case("CL +5", post("Content-Length: +5", body=b"hello"), 400, nginx=400),
    Case("TE gzip", post("Transfer-Encoding: gzip", body=b"hello"), 501, nginx=501),
    Case("TE gzip, chunked", post("Transfer-Encoding: gzip, chunked", body=HELLO_CHUNKED),
         501, nginx=501),
    Case("TE chunked, gzip", post("Transfer-Encoding: chunked, gzip", body=HELLO_CHUNKED),
         400, nginx=501),
    Case("TE chunked, chunked", post("Transfer-Encoding: chunked, chunked",
                                     body=HELLO_CHUNKED), 400, nginx=501),
    Case("TE xchunked", post("Transfer-Encoding: xchunked", body=HELLO_CHUNKED), 501,
         nginx=501),
    Case("TE identity", post("Transfer-Encoding: identity", body=b"hello"), 501, nginx=501),
    Case("two TE chunked", post("Transfer-Encoding: chunked", "Transfer-Encoding: chunked",
                                body=HELLO_CHUNKED), 400, nginx=400),
    Case("two TE chunked+gzip", post("Transfer-Encoding: chunked", "Transfer-Encoding: gzip",
                                     body=HELLO_CHUNKED), 400, nginx=400),
    Case("two TE gzip+chunked", post("Transfer-Encoding: gzip", "Transfer-Encoding: chunked",
                                     body=HELLO_CHUNKED), 501, nginx=400),
    Case("TE CHUNKED (case-insensitive)", post("Transfer-Encoding: CHUNKED",
                                              body=HELLO_CHUNKED),
         200, answered=2, check=echoed(5), nginx=200, nginx_own=False),
    Case("TE chunked on HTTP/1.0", post("Transfer-Encoding: chunked", version="1.0",
                                        body=HELLO_CHUNKED), 400, nginx=400),
    # -- bodies where none may be --
    Case("HEAD + CL body", post("Content-Length: 5", method="HEAD", target="/hello",
                                body=b"hello"), 400, nginx=400, nginx_own=False),
    Case("HEAD + body holding a request", post(f"Content-Length: {len(SMUGGLED)}",
                                               method="HEAD", target="/hello",
                                               body=SMUGGLED),
         400, nginx=400, nginx_own=False),
    Case("HEAD + chunked body", post("Transfer-Encoding: chunked", method="HEAD",
                                     target="/hello", body=HELLO_CHUNKED),
         400, nginx=400, nginx_own=False),
    Case("HEAD + CL 0", post("Content-Length: 0", method="HEAD", target="/hello"), 200,
         answered=2, nginx=200, nginx_own=False),
    Case("GET + CL body is its body", post(f"Content-Length: {len(SMUGGLED)}", method="GET",
                                           body=SMUGGLED),
         200, answered=2, check=echoed(len(SMUGGLED), "GET"), nginx=200, nginx_own=False),
    # -- field syntax (RFC 9112 §5) --
    Case("space before colon: Host", b"GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", 400,
         nginx=400),
    Case("space before colon: CL", post("Content-Length : 5", body=b"hello"), 400, nginx=400),
    Case("tab before colon", get(b"X-A\t: b"), 400, nginx=400),
    Case("name with space", get(b"X A: b"), 400, nginx=400),
    Case("name with @", get(b"X@A: b"), 400, nginx=200, nginx_own=False),
    Case("name with (", get(b"X(A: b"), 400, nginx=200, nginx_own=False),
    Case("name with /", get(b"X/A: b"), 400, nginx=200, nginx_own=False),
    Case("name with 0xE9", get(b"X\xe9A: b"), 400, nginx=200, nginx_own=False),
    Case("empty name", get(b": b"), 400, nginx=400),
    Case("obs-fold SP", get(b"X-A: b", b" c"), 400, nginx=400),
    Case("obs-fold HTAB", get(b"X-A: b", b"\tc"), 400, nginx=400),
    Case("first field line folded", b"GET /hello HTTP/1.1\r\n Host: x\r\n\r\n", 400,
         nginx=400),
    Case("NUL in value", get(b"X-A: b\x00c"), 400, nginx=400),
    Case("bare CR in value", get(b"X-A: b\rc"), 400, nginx=400),
    Case("CR before CRLF", get(b"X-A: b\r"), 400, nginx=200, nginx_own=False),
    Case("ESC in value", get(b"X-A: b\x1bc"), 400, nginx=400, nginx_own=False),
    Case("VT in value", get(b"X-A: b\x0bc"), 400, nginx=400, nginx_own=False),
    Case("DEL in value", get(b"X-A: b\x7fc"), 400, nginx=400, nginx_own=False),
    Case("HTAB and obs-text in value", get(b"X-A: b\tc\xe9"), 200, answered=2,
         check=says_hello, nginx=200, nginx_own=False),
    Case("bare LF everywhere", b"GET /hello HTTP/1.1\nHost: x\n\n", 400, nginx=200,
         nginx_own=False),
    Case("bare LF after a field", b"GET /hello HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400,
         nginx=200, nginx_own=False),
    Case("bare LF ends the head", b"GET /hello HTTP/1.1\r\nHost: x\r\n\n", 400, nginx=200,
         nginx_own=False),
    Case("bare CR line ends", b"GET /hello HTTP/1.1\rHost: x\r\r", 400, nginx=400),
    # -- chunked coding (RFC 9112 §7.1) --
    Case("chunk size 0x5", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), 400, nginx=400),
    Case("chunk size +5", chunked(b"+5\r\nhello\r\n0\r\n\r\n"), 400, nginx=400),
    Case("chunk size -5", chunked(b"-5\r\nhello\r\n0\r\n\r\n"), 400, nginx=400),
    Case("chunk size '5 junk'", chunked(b"5 junk\r\nhello\r\n0\r\n\r\n"), 400, nginx=200,
         nginx_own=False),
    Case("chunk size overflows", chunked(b"1" * 20 + b"\r\nhello\r\n0\r\n\r\n"), 400,
         nginx=400),
    Case("chunk size with leading zeros", chunked(b"0" * 30 + HELLO_CHUNKED), 200,
         answered=2, check=echoed(5), nginx=200, nginx_own=False),
    Case("chunk data without CRLF", chunked(b"5\r\nhelloXX0\r\n\r\n"), 400, nginx=400),
    Case("chunk lines with bare LF", chunked(b"5\nhello\n0\n\n"), 400, nginx=200,
         nginx_own=False),
    Case("chunk ext 5;ext=1", chunked(b"5;ext=1\r\nhello\r\n0\r\n\r\n"), 200, answered=2,
         check=echoed(5), nginx=200, nginx_own=False),
    Case('chunk ext 5;ext="a b"', chunked(b'5;ext="a b"\r\nhello\r\n0\r\n\r\n'), 200,
         answered=2, check=echoed(5), nginx=200, nginx_own=False),
    Case("chunked with trailers", chunked(b"5\r\nhello\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n"),
         200, answered=2, check=echoed(5), nginx=200, nginx_own=False),
    Case("trailer name with space", chunked(b"5\r\nhello\r\n0\r\nX T: 1\r\n\r\n"), 400,
         nginx=200, nginx_own=False),
    # -- Host (RFC 9112 §3.2) --
    Case("HTTP/1.1 without Host", b"GET /hello HTTP/1.1\r\n\r\n", 400, nginx=400),
    Case("two Host", get(b"Host: y"), 400, nginx=400),
    Case("two identical Host", get(b"Host: x"), 400, nginx=400),
    # -- request line and version (RFC 9112 §2.3, §3; RFC 9110 §6.2) --
    Case("HTTP/1.44", b"GET /hello HTTP/1.44\r\nHost: x\r\n\r\n", 400, nginx=200,
         nginx_own=False),
    Case("HTTP/2.0", b"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505, nginx=505),
    Case("HTTP/1.1 answered as 1.1", get(), 200, answered=2, check=version_is("HTTP/1.1"),
         nginx=200, nginx_own=False),
    Case("HTTP/1.0 answered as 1.0, then closed", b"GET /hello HTTP/1.0\r\n\r\n", 200,
         answered=1, check=version_is("HTTP/1.0"), nginx=400, nginx_own=False),
    Case("HTTP/1.0 keep-alive", b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
         200, answered=2, check=version_is("HTTP/1.0"), nginx=400, nginx_own=False),
    Case("unknown method FOO", b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n", 501, nginx=501,
         nginx_own=False),
    Case("lower-case method get", b"get /hello HTTP/1.1\r\nHost: x\r\n\r\n", 501,
         nginx=400),
    Case("garbage request line", b"GARBAGE\r\n\r\n", 400, nginx=400),
    Case("control bytes request line", b"\x01\x02garbage\r\n\r\n", 400, nginx=400),
    Case("relative target", b"GET hello HTTP/1.1\r\nHost: x\r\n\r\n", 400, nginx=400),
    Case("CONNECT", b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", 400, nginx=400),
    # A WebSocket handshake without its key and version: refused (426, RFC 6455 §4.4),
    # not served as a plain GET.  nginx drops the Upgrade: a plain GET reaches us.
    Case("Upgrade: websocket, no handshake", get(b"Connection: upgrade",
                                                 b"Upgrade: websocket"), 426,
         nginx=200, nginx_own=False),
    Case("Upgrade: h2c", get(b"Connection: upgrade", b"Upgrade: h2c"), 200,
         answered=1, check=says_hello, nginx=200, nginx_own=False),
    # -- limits and expectations --
    Case("head over --max-header-size", get(b"X-Big: " + b"y" * 2 * LIMIT), 431, nginx=431,
         nginx_own=False),
    Case("more than 100 fields", get(*[b"A: b"] * 120), 431, nginx=431, nginx_own=False),
    Case("CL over --max-body-size", post(f"Content-Length: {2 * LIMIT}",
                                         body=b"x" * 2 * LIMIT), 413, nginx=413,
         nginx_own=False),
    Case("chunked over --max-body-size", chunked(b"%x\r\n" % (2 * LIMIT) + b"x" * 2 * LIMIT
                                                 + b"\r\n0\r\n\r\n"),
         413, nginx=413, nginx_own=False),
    Case("Expect 100-continue over the limit: no 100", post(
        f"Content-Length: {2 * LIMIT}", "Expect: 100-continue"), 413),
    Case("unknown Expect with a body", post("Content-Length: 5", "Expect: foo",
                                            body=b"hello"), 417, nginx=200, nginx_own=False),
]


def _param(case: Case) -> Any:
    return pytest.param(case, id=case.id)


# -- helpers ----------------------------------------------------------------------------


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a hang fails with a timeout)."""
    sock.settimeout(TIMEOUT)
    data = []
    while chunk := sock.recv(65536):
        data.append(chunk)
    return b"".join(data)


def counters(server: ServerProcess) -> tuple[int, int]:
    """(requests served, requests refused) so far, this stats request included."""
    stats = server.stats()
    return stats["requests_total"], sum(stats["refused_total"].values())


def since(server: ServerProcess, before: tuple[int, int]) -> tuple[int, int]:
    """Requests served and refused since ``before`` (the stats requests left out)."""
    served, refused = counters(server)
    return served - before[0] - 1, refused - before[1]


def answers(data: bytes, *, head: bool) -> list[RawResponse]:
    """Every response in ``data``, which must hold whole responses and nothing else."""
    reader = io.BytesIO(data)
    responses = []
    while reader.tell() < len(data):
        response = read_response(reader, head=head and not responses)
        assert response.complete, f"cut response in {data!r}"
        responses.append(response)
    return responses


# -- direct ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_direct(framing: ServerProcess, case: Case) -> None:
    """Our answer, the close, and what was (not) served of the pipelined request."""
    before = counters(framing)
    with connect(framing.port, timeout=TIMEOUT) as sock:
        sock.sendall(case.raw + NEXT)
        data = read_to_eof(sock)
    served, refused = since(framing, before)
    if not case.answered:
        reader = io.BytesIO(data)
        first = read_head(reader)
        assert (first.status, first.version) == (case.status, "HTTP/1.1"), data
        assert first.header("Connection") == "close"
        rest = reader.read()
        assert b"HTTP/" not in rest, f"a second response after the refusal: {data!r}"
        assert (served, refused) == (0, 1)
        return
    responses = answers(data, head=case.raw.startswith(b"HEAD"))
    assert [r.status for r in responses] == [case.status, 200][:case.answered], data
    if case.check:
        case.check(responses[0])
    if case.answered == 2:
        assert responses[1].body == b"hello"
    assert (served, refused) == (case.answered, 0)


def test_expect_100_continue_then_the_answer(framing: ServerProcess) -> None:
    """The interim 100 comes before the body is sent; then the real answer, and the
    request pipelined behind the body is served too."""
    for head, body in [(post("Content-Length: 5", "Expect: 100-continue"), b"hello"),
                       (post("Transfer-Encoding: chunked", "Expect: 100-continue"),
                        HELLO_CHUNKED)]:
        with connect(framing.port, timeout=TIMEOUT) as sock, \
                sock.makefile("rb") as reader:
            sock.sendall(head)
            interim = read_response(reader)
            assert (interim.version, interim.status) == ("HTTP/1.1", 100)
            sock.sendall(body + NEXT)
            final = read_response(reader)
            assert final.status == 200 and final.json()["body_len"] == 5
            assert read_response(reader).body == b"hello"
            assert reader.read() == b""


def test_pipelined_head_split_after_a_body_is_not_too_large(framing: ServerProcess) -> None:
    """A POST with a 1000-byte body and the first bytes of a small GET in one write,
    the rest of the GET later: the GET's head is 50 bytes, far under the limit."""
    first = post("Content-Length: 1000", body=b"x" * 1000)
    with connect(framing.port, timeout=TIMEOUT) as sock, sock.makefile("rb") as reader:
        sock.sendall(first + NEXT[:10])
        assert read_response(reader).json()["body_len"] == 1000
        sock.sendall(NEXT[10:])
        second = read_response(reader)
    assert (second.status, second.body) == (200, b"hello")


def test_trailer_section_over_the_head_limit_is_refused(framing: ServerProcess) -> None:
    """The trailer section is a field section like the head: 64 KiB of it against a
    1 KiB --max-header-size must be refused, not held in memory."""
    raw = chunked(b"5\r\nhello\r\n0\r\nX-T: " + b"a" * 64 * LIMIT + b"\r\n\r\n")
    with connect(framing.port, timeout=TIMEOUT) as sock:
        sock.sendall(raw + NEXT)
        data = read_to_eof(sock)
    first = read_head(io.BytesIO(data))
    assert first.status in (400, 413, 431), data[:200]


# -- through nginx --------------------------------------------------------------------


@pytest.mark.parametrize("case", [_param(c) for c in CASES
                                  if c.nginx is not None])
def test_through_nginx(framing: ServerProcess, proxy: nginx.Nginx, case: Case) -> None:
    """nginx refuses it, or exactly one request reaches us: never two."""
    before = counters(framing)
    with connect(proxy.port, timeout=TIMEOUT) as sock, sock.makefile("rb") as reader:
        sock.sendall(case.raw)
        response = read_response(reader, head=case.raw.startswith(b"HEAD"))
        while 100 <= response.status < 200:
            response = read_response(reader, head=case.raw.startswith(b"HEAD"))
    served, refused = since(framing, before)
    assert response.status == case.nginx
    if case.nginx_own:
        assert (served, refused) == (0, 0), "nginx forwarded it"
        assert "nginx" in (response.header("Server") or "")
    else:
        assert served + refused == 1
        assert refused == (1 if response.status >= 400 else 0)


def test_head_body_through_nginx_does_not_capture_the_next_client(
        framing: ServerProcess, proxy: nginx.Nginx) -> None:
    """The old server's smuggling: A's HEAD carries a body that is the head of a POST
    whose body is "the next 40 bytes".  Had we served the HEAD and kept the upstream
    connection, nginx would reuse it for B, and B's request (with its cookie) would
    become that POST's body, its answer going to B.  B must get its own answer."""
    smuggled = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n"
    before = counters(framing)
    with connect(proxy.port, timeout=TIMEOUT) as a, a.makefile("rb") as a_reader:
        a.sendall(post(f"Content-Length: {len(smuggled)}", method="HEAD", target="/hello",
                       body=smuggled))
        assert read_response(a_reader, head=True).status == 400
        for n in range(3):  # B, again and again: any upstream connection nginx kept
            with connect(proxy.port, timeout=TIMEOUT) as b, b.makefile("rb") as b_reader:
                b.sendall(b"GET /echo?client=B%d HTTP/1.1\r\nHost: x\r\n"
                          b"Cookie: session=B-secret\r\n\r\n" % n)
                answer = read_response(b_reader)
            assert answer.status == 200
            data = answer.json()
            assert (data["method"], data["body_len"]) == ("GET", 0)
            assert data["meta"]["QUERY_STRING"] == f"client=B{n}"
            assert data["meta"]["HTTP_COOKIE"] == "session=B-secret"
    assert since(framing, before) == (3, 1)  # B's three; A's HEAD refused, nothing else

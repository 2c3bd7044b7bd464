"""HTTP/1.1 framing with no I/O: requests parsed strictly, responses framed.

Parsing is llhttp's (through ``httptools``), strict: it refuses a Content-Length
together with Transfer-Encoding, duplicate Content-Lengths, malformed chunk sizes,
obsolete line folding, whitespace before a header's colon, control characters in
headers.  On top of llhttp this module adds what RFC 9112 asks of a server and
llhttp leaves to it: a ``Host`` on every HTTP/1.1 request (and only one), no
Transfer-Encoding on HTTP/1.0, only ``chunked`` as a transfer coding (501 else), no
body on ``HEAD``, versions 1.0 and 1.1 only, and bounds on the head, the headers and
the body.  Any such error is a ``ProtocolError``: the connection answers it and
closes, so nothing after an unframeable request is ever read as a request.

Responses: the status line carries the server's version (``HTTP/1.1``, or
``HTTP/1.0`` to a 1.0 client), never the client's string.
"""

from __future__ import annotations

import enum
import re
import time
from collections import deque
from dataclasses import dataclass
from email.utils import formatdate

import httptools

# RFC 9110 tchar: the characters a header name (a token) may hold.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# A field value may hold visible characters, spaces, tabs and obs-text; never CR,
# LF, NUL or other controls (llhttp already refuses those on input).
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_METHOD_THEN_SPACE = re.compile(rb"(?:\r\n)*[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^ \r\n]+ HTTP/")
FEED_PIECE = 4096  # bytes parsed at a time: a pipelined burst queues few requests


class ProtocolError(Exception):
    """A request that cannot be served; answered with ``status`` and the connection
    closed."""

    def __init__(self, status: int, reason: str, detail: str = "",
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{status} {reason}" + (f": {detail}" if detail else ""))
        self.status = status
        self.reason = reason
        self.detail = detail  # a short explanation for the body (the reason stays standard)
        self.headers = headers  # extra response headers (426's Sec-WebSocket-Version)


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one request may make the server hold."""

    max_head: int = 64 * 1024  # request line and headers, bytes
    max_headers: int = 100  # header lines
    max_body: int = 1024 * 1024  # body bytes (413 above)


@dataclass(slots=True)
class Request:
    """One complete request, as read off the wire."""

    method: str
    target: bytes
    version: tuple[int, int]
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool


_VERSIONS = {"1.1": (1, 1), "1.0": (1, 0)}
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
                                     "OPTIONS")}


class ReadState(enum.Enum):
    """Where a ``RequestReader`` is in the byte stream; only the reader changes it.

    ``BETWEEN -> HEAD`` (a request's first byte) ``-> BODY`` or ``CONTINUE`` (its
    blank line; ``CONTINUE`` when it asked for ``100 Continue`` and that is not sent
    yet) ``-> BETWEEN`` (its message complete; ``CONTINUE -> BODY`` once the
    connection sent the interim reply).  Any state ``-> FAILED`` on an unframeable
    request, ``-> UPGRADED`` on ``CONNECT`` or an ``Upgrade`` header; both are final.
    """

    BETWEEN = "between"  # nothing of a next request read yet
    HEAD = "head"  # between the first byte of a request and its blank line
    BODY = "body"  # after a request's head, until its message is complete
    CONTINUE = "continue"  # in the body; ``100 Continue`` asked for, not yet sent
    FAILED = "failed"  # a ``ProtocolError`` is queued; nothing more is parsed
    UPGRADED = "upgraded"  # the client switched protocols (refused): nothing more parsed


_IN_BODY = (ReadState.BODY, ReadState.CONTINUE)


class RequestReader:
    """Turns the bytes of one connection into ``Request``s (or one ``ProtocolError``).

    ``feed`` stops parsing once a complete request is queued and returns the bytes it
    did not parse, so a pipelining client can make the server hold at most one
    piece of parsed input beyond the request being served.
    """

    __slots__ = (
        "limits", "parser", "queue", "state", "head_size", "url", "headers", "body",
        "body_size", "host_count", "transfer_encoding", "content_length",
        "version", "method", "framing_size",
    )

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[Request | ProtocolError] = deque()
        self.state = ReadState.BETWEEN
        self.version = (1, 1)
        self.method = "GET"
        self.head_size = 0
        self.framing_size = 0  # bytes of a body's chunked encoding that are not body
        self.url: list[bytes] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.host_count = 0
        self.transfer_encoding: bytes | None = None
        self.content_length: bytes | None = None

    @property
    def in_head(self) -> bool:
        return self.state is ReadState.HEAD

    @property
    def in_body(self) -> bool:
        return self.state in _IN_BODY

    @property
    def wants_continue(self) -> bool:
        """The request's head asked for ``100 Continue`` and it is not sent yet."""
        return self.state is ReadState.CONTINUE

    @property
    def upgraded(self) -> bool:
        return self.state is ReadState.UPGRADED

    def continue_sent(self) -> None:
        """The connection wrote ``100 Continue``: the body is simply awaited now."""
        if self.state is ReadState.CONTINUE:
            self.state = ReadState.BODY

    def feed(self, data: bytes) -> bytes:
        """Parse ``data``; complete requests go to ``queue``.  Returns the unparsed rest
        (non-empty only once a request is queued).  A framing error is queued last."""
        size = len(data)
        pos = 0
        parser = self.parser
        try:
            while pos < size and not self.queue:
                piece = data if pos == 0 and size <= FEED_PIECE else data[pos:pos + FEED_PIECE]
                before = self.state
                body_before = self.body_size
                parser.feed_data(piece)
                pos += len(piece)
                if self.in_head and not self.queue and b"\n" in piece.lstrip(b"\r\n") \
                        and parser.get_http_version() == "0.0":
                    # A line ended in the head and still no version: "GET /" and a
                    # line end is HTTP/0.9, which llhttp would wait on (for headers
                    # that never come) until the head deadline.  (A valid request
                    # line has its version parsed before its line end.)
                    raise ProtocolError(400, "Bad Request")
                # Bytes llhttp buffers for us before a callback (a header still coming,
                # a trailer) are bounded here, counting whole pieces that began inside
                # the head or body (the piece a head starts in is not counted: the
                # completed head's size is checked exactly in on_headers_complete).
                state = self.state
                if state is ReadState.HEAD and before is ReadState.HEAD:
                    self.head_size += len(piece)
                    if self.head_size > self.limits.max_head:
                        raise ProtocolError(431, "Request Header Fields Too Large")
                elif state in _IN_BODY and before in _IN_BODY:
                    # Chunk framing, extensions and trailers: past one head's worth
                    # beyond the body itself, the encoding is abuse.
                    self.framing_size += len(piece) - (self.body_size - body_before)
                    if self.framing_size > self.limits.max_head + self.body_size:
                        raise ProtocolError(431, "Request Header Fields Too Large")
        except httptools.HttpParserUpgrade:
            # CONNECT or an Upgrade header: we speak only HTTP/1.1.  A complete GET
            # that asked to upgrade is served, then the connection closes.
            if self.queue:
                request = self.queue[-1]
                if isinstance(request, Request):
                    request.keep_alive = False
                    if request.method == "CONNECT":
                        self.queue[-1] = ProtocolError(405, "Method Not Allowed")
            else:
                self.queue.append(ProtocolError(400, "Bad Request"))
            self.url = []
            self.state = ReadState.UPGRADED
            return b""
        except ProtocolError as exc:
            self._fail(exc)
            return b""
        except httptools.HttpParserInvalidMethodError:
            # A well-formed but unknown method is 501 (RFC 9110 §9.1); garbage is 400.
            unknown = _METHOD_THEN_SPACE.match(data, pos)
            self._fail(ProtocolError(501, "Not Implemented") if unknown
                       else ProtocolError(400, "Bad Request"))
            return b""
        except httptools.HttpParserError as exc:
            mine = exc.__context__
            self._fail(mine if isinstance(mine, ProtocolError)
                       else ProtocolError(400, "Bad Request"))
            return b""
        return data[pos:] if pos < size else b""

    def _fail(self, error: ProtocolError) -> None:
        self.state = ReadState.FAILED
        self.url = []
        self.queue.append(error)

    # -- llhttp callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self.state = ReadState.HEAD
        self.head_size = 0
        self.framing_size = 0
        self.url = []
        self.headers = []
        self.body = []
        self.body_size = 0
        self.host_count = 0
        self.transfer_encoding = None
        self.content_length = None

    def on_url(self, url: bytes) -> None:
        self.url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.state is not ReadState.HEAD:  # a chunked body's trailer: bounded, then ignored
            self.framing_size += len(name) + len(value) + 4
            if self.framing_size > self.limits.max_head + self.body_size:
                raise ProtocolError(431, "Request Header Fields Too Large")
            return
        headers = self.headers
        if len(headers) >= self.limits.max_headers:
            raise ProtocolError(431, "Request Header Fields Too Large")
        lower = name.lower()
        if lower == b"host":
            self.host_count += 1
        elif lower == b"transfer-encoding":  # several lines make one list (RFC 9110 §5.3)
            coding = self.transfer_encoding
            self.transfer_encoding = value if coding is None else coding + b", " + value
        elif lower == b"content-length":
            self.content_length = value
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.state = ReadState.BODY  # until on_message_complete, which may come at once
        # The head as received (a close upper bound: request line and header lines).
        size = sum(map(len, self.url)) + 14
        for name, value in self.headers:
            size += len(name) + len(value) + 4
        if size > self.limits.max_head:
            raise ProtocolError(431, "Request Header Fields Too Large")
        parser = self.parser
        text = parser.get_http_version()
        version = _VERSIONS.get(text)
        if version is None:
            if text.startswith("0."):
                raise ProtocolError(400, "Bad Request")
            raise ProtocolError(505, "HTTP Version Not Supported")
        self.version = version
        if version == (1, 1) and self.host_count != 1 or self.host_count > 1:
            raise ProtocolError(400, "Bad Request")
        target = b"".join(self.url)
        if not (target[:1] == b"/" or target == b"*"
                or target.startswith((b"http://", b"https://")) and authority(target)):
            raise ProtocolError(400, "Bad Request")
        coding = self.transfer_encoding
        has_body = False
        if coding is not None:
            if version < (1, 1):  # RFC 9112 §6.1: faulty framing
                raise ProtocolError(400, "Bad Request")
            if coding.strip().lower() != b"chunked":
                raise ProtocolError(501, "Not Implemented")
            has_body = True
        elif self.content_length is not None:
            length = int(self.content_length)  # llhttp checked the digits
            if length > self.limits.max_body:
                raise ProtocolError(413, "Content Too Large")
            has_body = length > 0
        raw_method = parser.get_method()
        method = self.method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        if has_body and method == "HEAD":
            raise ProtocolError(400, "Bad Request")
        if has_body:
            for name, value in self.headers:
                if name.lower() == b"expect":
                    if value.strip().lower() != b"100-continue":
                        raise ProtocolError(417, "Expectation Failed")
                    self.state = ReadState.CONTINUE

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.limits.max_body:
            raise ProtocolError(413, "Content Too Large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        body = self.body
        url = self.url
        self.queue.append(Request(
            self.method, url[0] if len(url) == 1 else b"".join(url), self.version,
            self.headers, body[0] if len(body) == 1 else b"".join(body),
            parser.should_keep_alive(),
        ))
        self.url = []
        self.state = ReadState.BETWEEN


def authority(target: bytes) -> bytes:
    """The host (and port) of an absolute-form target, which RFC 9112 §3.2.2 puts
    before any ``Host`` header; empty when there is none (a 400)."""
    rest = target.partition(b"://")[2]
    for stop in (b"/", b"?", b"#"):
        rest = rest.partition(stop)[0]
    return rest.rpartition(b"@")[2]


# -- responses ----------------------------------------------------------------------

_date_cache: list = [0, b""]


def http_date() -> bytes:
    """The ``Date`` header value, formatted once per second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = formatdate(now, usegmt=True).encode("ascii")
    return _date_cache[1]


_GOOD_NAMES: set[str] = set()  # names already checked (applications use few)


def check_header(name: str, value: str) -> None:
    """Refuse a response header that would corrupt the framing (CR/LF injection)."""
    if name not in _GOOD_NAMES:
        if not _TOKEN.match(name.encode("latin-1")):
            raise ValueError(f"bad header name {name!r}")
        if len(_GOOD_NAMES) < 512:
            _GOOD_NAMES.add(name)
    if not value.isprintable() and _BAD_VALUE.search(value):
        raise ValueError(f"header {name!r} has a control character (CR or LF?) in its value")


_STATUS = re.compile(r"[1-5][0-9][0-9] [^\x00-\x08\x0a-\x1f\x7f]*\Z")


def check_status(status: str) -> None:
    """Refuse a WSGI status that is not ``ddd reason`` on one line (response splitting)."""
    if not _STATUS.match(status):
        raise ValueError(f"bad WSGI status {status!r}")


def response_head(version: tuple[int, int], status: bytes, headers: list[tuple[str, str]],
                  *, length: int | None, chunked: bool, keep_alive: bool) -> bytes:
    """The status line and headers of a response.

    ``status`` is ``b"200 OK"``; ``length`` adds Content-Length (unless the
    application gave one); ``chunked`` adds Transfer-Encoding.  Connection is
    ``close`` or, for an HTTP/1.0 client that asked for it, ``keep-alive``.
    """
    lines = [b"HTTP/1.1 " if version >= (1, 1) else b"HTTP/1.0 ", status, b"\r\nDate: ",
             http_date(), b"\r\n"]
    for name, value in headers:
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    if chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    elif length is not None:
        lines.append(b"Content-Length: %d\r\n" % length)
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    elif version < (1, 1):
        lines.append(b"Connection: keep-alive\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body (never empty: that would end it)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def error_response(version: tuple[int, int], status: int, reason: str, detail: str = "",
                   headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A complete plain-text error response that closes the connection."""
    body = f"{status} {reason}{': ' + detail if detail else ''}\n".encode()
    return response_head(version, f"{status} {reason}".encode(),
                         [("Content-Type", "text/plain; charset=utf-8"), *headers],
                         length=len(body), chunked=False, keep_alive=False) + body

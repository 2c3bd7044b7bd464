"""A raw HTTP/1.x client that shows the framing the server really sent."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO

TIMEOUT = 15.0


class ConnectionClosed(Exception):
    """The server closed the connection before a status line arrived."""


@dataclass
class RawResponse:
    """One response as parsed off the wire, with the framing kept for assertions."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    chunks: list[bytes] = field(default_factory=list)
    chunk_times: list[float] = field(default_factory=list)
    framing: str = "length"  # "length", "chunked", "close" or "none"
    complete: bool = False  # the end of the body was seen (0-chunk, length or EOF)
    raw_chunk_sizes: list[bytes] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def header_names(self) -> set[str]:
        return {key.lower() for key, _ in self.headers}

    def json(self) -> Any:
        return json.loads(self.body)


def build_request(method: str, target: str, *, version: str = "HTTP/1.1",
                  headers: dict[str, str] | list[tuple[str, str]] | None = None,
                  body: bytes = b"", host: bool = True) -> bytes:
    """The bytes of one request; Content-Length is added for a body unless given."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in items}
    if host and "host" not in names:
        items.insert(0, ("Host", "testserver"))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        items.append(("Content-Length", str(len(body))))
    head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in items)
    return head.encode("latin-1") + b"\r\n" + body


def connect(port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT,
            source: str | None = None) -> socket.socket:
    """A blocking client socket with a generous timeout (a hang fails, not blocks);
    ``source``: the local address to connect from (``127.0.0.2``: another client)."""
    sock = socket.create_connection((host, port), timeout=timeout,
                                    source_address=None if source is None else (source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _readline(reader: BinaryIO) -> bytes:
    return reader.readline(65537)


def read_head(reader: BinaryIO) -> RawResponse:
    """Read a status line and headers; the body is left on the wire."""
    status_line = _readline(reader)
    if not status_line:
        raise ConnectionClosed("connection closed before a response")
    version, _, rest = status_line.decode("latin-1").rstrip("\r\n").partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or not code.isdigit():
        raise AssertionError(f"not a status line: {status_line!r}")
    headers: list[tuple[str, str]] = []
    while True:
        line = _readline(reader)
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise ConnectionClosed("connection closed inside the response head")
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    return RawResponse(version=version, status=int(code), reason=reason, headers=headers)


def read_response(reader: BinaryIO, *, head: bool = False) -> RawResponse:
    """Read one response; ``head`` means the request was HEAD (no body expected)."""
    response = read_head(reader)
    if head or response.status in (204, 304) or 100 <= response.status < 200:
        response.framing = "none"
        response.complete = True
        return response
    te = (response.header("Transfer-Encoding") or "").lower()
    length = response.header("Content-Length")
    if "chunked" in te:
        response.framing = "chunked"
        while (chunk := read_chunk(reader, response)) is not None:
            response.body += chunk
    elif length is not None:
        data = reader.read(int(length))
        response.body = data
        response.complete = len(data) == int(length)
    else:
        response.framing = "close"
        response.body = reader.read()
        response.complete = True
    return response


def read_chunk(reader: BinaryIO, response: RawResponse) -> bytes | None:
    """The next chunk of a chunked body, parsing the sizes ourselves.

    Returns None at the end: after the 0-chunk and trailers (``response.complete`` is
    then True) or when the connection ends first (it stays False).  A chunk cut short
    is returned with what arrived, and the next call returns None.
    """
    size_line = _readline(reader)
    if not size_line:
        return None
    if not size_line.endswith(b"\r\n"):
        raise AssertionError(f"chunk size line without CRLF: {size_line!r}")
    response.raw_chunk_sizes.append(size_line)
    size = int(size_line.split(b";", 1)[0].strip(), 16)
    if size == 0:
        while True:  # trailers, then the blank line
            trailer = _readline(reader)
            if trailer in (b"\r\n", b""):
                response.complete = trailer == b"\r\n"
                return None
    data = reader.read(size)
    response.chunks.append(data)
    response.chunk_times.append(time.monotonic())
    if len(data) < size:
        return data
    crlf = reader.read(2)
    if crlf not in (b"\r\n", b""):
        raise AssertionError(f"chunk of {size} bytes not followed by CRLF: {crlf!r}")
    return data


def exchange(port: int, raw: bytes, *, count: int = 1, head: bool = False,
             timeout: float = TIMEOUT, host: str = "127.0.0.1") -> list[RawResponse]:
    """Send ``raw`` on a fresh connection and read ``count`` responses."""
    with connect(port, host, timeout=timeout) as sock, sock.makefile("rb") as reader:
        sock.sendall(raw)
        return [read_response(reader, head=head) for _ in range(count)]


def is_closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the server closes ``sock`` (EOF or reset) within ``timeout``.

    Bytes still arriving are read and dropped.
    """
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if sock.recv(65536) == b"":
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False

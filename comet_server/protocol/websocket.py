"""WebSocket (RFC 6455) without I/O: the opening handshake checked, then frames.

The framing is the ``websockets`` package's sans-I/O ``Protocol`` (masking,
fragmentation, control frames, close codes, the size bound; C speedups), cheaper per
frame than wsproto (``bench/bench_ws_framing.py``).  On top of it this module adds
what that layer leaves to its caller: the handshake checks it does not make (a GET,
HTTP/1.1, version 13 answered 426 as RFC 6455 §4.4 asks), messages assembled from
fragments with their UTF-8 checked as each fragment arrives (a bad text fails at
once with 1007, not after the whole message), and frames made once for many sockets
(a server's frames are not masked, so the same bytes go to every socket).

No compression is negotiated: permessage-deflate keeps a context per socket, which
would forbid writing one frame's bytes to thousands of them.  Knows nothing of
sockets, WSGI or Django.
"""

from __future__ import annotations

import codecs

from websockets.datastructures import Headers
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.http11 import Request as WsRequest
from websockets.protocol import Protocol, Side, State
from websockets.server import ServerProtocol

from comet_server.protocol import http1

__all__ = ["CloseCode", "Handshake", "WebSocketFramer", "accept", "is_upgrade", "text_frame"]

VERSION = b"13"
_DETAIL_PREFIX = "Failed to open a WebSocket connection: "


def is_upgrade(request: http1.Request) -> bool:
    """The request asks to become a WebSocket (an ``Upgrade`` header naming it)."""
    for name, value in request.headers:
        if len(name) == 7 and name.lower() == b"upgrade" \
                and b"websocket" in (t.strip().lower() for t in value.split(b",")):
            return True
    return False


class Handshake:
    """An accepted opening handshake: the framer to use once the 101 has gone out,
    and the 101's bytes."""

    __slots__ = ("framer", "response")

    def __init__(self, framer: WebSocketFramer, response: bytes) -> None:
        self.framer = framer
        self.response = response


def accept(request: http1.Request, *, max_message: int) -> Handshake:
    """Check the opening handshake strictly; ``http1.ProtocolError`` (400 or 426, with
    a short reason) when it is not a valid one.  Origin is not checked here: what is
    a site's own origin is the application's to say."""
    if request.method != "GET":
        raise http1.ProtocolError(400, "Bad Request", "a WebSocket handshake is a GET")
    if request.version != (1, 1):
        raise http1.ProtocolError(400, "Bad Request", "a WebSocket handshake needs HTTP/1.1")
    if request.body:
        raise http1.ProtocolError(400, "Bad Request", "a WebSocket handshake has no body")
    versions = [v.strip() for n, v in request.headers if n.lower() == b"sec-websocket-version"]
    if versions != [VERSION]:
        raise http1.ProtocolError(426, "Upgrade Required",
                                  "WebSocket version 13 only (Sec-WebSocket-Version)",
                                  headers=(("Sec-WebSocket-Version", "13"),))
    protocol = ServerProtocol(max_size=max_message)
    headers = Headers((n.decode("latin-1"), v.decode("latin-1")) for n, v in request.headers)
    response = protocol.accept(WsRequest(request.target.decode("latin-1"), headers))
    if response.status_code != 101:
        detail = response.body.decode("utf-8", "replace").split("\n", 1)[0]
        detail = detail.removeprefix(_DETAIL_PREFIX).rstrip(".")
        if response.status_code == 426:
            raise http1.ProtocolError(426, "Upgrade Required", detail,
                                      headers=(("Upgrade", "websocket"),
                                               ("Connection", "Upgrade")))
        raise http1.ProtocolError(400, "Bad Request", detail)
    if "Server" in response.headers:
        del response.headers["Server"]
    protocol.send_response(response)
    head = b"".join(protocol.data_to_send())
    # ServerProtocol's parser begins with the HTTP request, which llhttp has read:
    # the frames go to a protocol that starts open.
    framer = WebSocketFramer(Protocol(Side.SERVER, state=State.OPEN, max_size=max_message))
    return Handshake(framer, head)


def text_frame(payload: bytes) -> bytes:
    """A server's text message as one frame (unmasked: the same bytes serve every
    socket).  ``payload`` must be UTF-8."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


Message = str | bytes
_Utf8 = codecs.getincrementaldecoder("utf-8")


class WebSocketFramer:
    """One socket's frames: bytes in, messages out; messages and closes in, bytes out.

    ``feed(data)`` returns the complete messages (``str`` for text, ``bytes`` for
    binary) and leaves what to write in ``take_output()``; pings are answered, a
    close is echoed, and a protocol error (a bad frame, bad UTF-8, a message past
    ``max_message``: 1009) sends its close.  Once a close has been sent and received,
    or the peer's input is no longer wanted, ``done`` is True: the caller closes the
    TCP connection (a server closes it first, RFC 6455 §7.1.1).
    """

    __slots__ = ("protocol", "parts", "decoder", "text", "eof_due")

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.parts: list[bytes] = []  # fragments of a binary message (or raw text)
        self.decoder: codecs.IncrementalDecoder | None = None
        self.text: list[str] = []  # decoded fragments of a text message
        self.eof_due = False  # the library asked for the TCP connection's end

    @property
    def open(self) -> bool:
        return self.protocol.state is State.OPEN

    @property
    def done(self) -> bool:
        """Nothing more is to be read: close the connection once the output is out."""
        return self.eof_due or self.protocol.state is State.CLOSED

    @property
    def close_code(self) -> int | None:
        """The code of the close received, or else sent (None: no close yet)."""
        close: Close | None = self.protocol.close_rcvd or self.protocol.close_sent
        return None if close is None else int(close.code)

    def feed(self, data: bytes) -> list[Message]:
        """Parse ``data``; the complete messages it ends."""
        protocol = self.protocol
        protocol.receive_data(data)
        messages: list[Message] = []
        for frame in protocol.events_received():
            if not isinstance(frame, Frame):  # handshake events: none once open
                continue
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
                message = self._assemble(frame)
                if message is not None:
                    messages.append(message)
                if not self.open and protocol.state is not State.CLOSING:
                    break
        return messages

    def _assemble(self, frame: Frame) -> Message | None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT:
            if frame.fin:  # the common case: a whole message in one frame
                try:
                    return bytes(frame.data).decode()
                except UnicodeDecodeError as exc:
                    self._invalid(exc)
                    return None
            self.decoder = _Utf8()
        elif opcode is Opcode.BINARY:
            if frame.fin:
                return bytes(frame.data)
            self.decoder = None
            self.parts = []
        decoder = self.decoder
        if decoder is not None:
            try:
                self.text.append(decoder.decode(frame.data, frame.fin))
            except UnicodeDecodeError as exc:
                self._invalid(exc)
                return None
            if not frame.fin:
                return None
            text, self.text, self.decoder = "".join(self.text), [], None
            return text
        self.parts.append(bytes(frame.data))
        if not frame.fin:
            return None
        data, self.parts = b"".join(self.parts), []
        return data

    def _invalid(self, exc: UnicodeDecodeError) -> None:
        self.text, self.decoder = [], None
        if self.open:
            self.protocol.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")

    def feed_eof(self) -> None:
        self.protocol.receive_eof()

    def send(self, message: Message) -> None:
        """Queue a message, text for ``str``, binary for ``bytes`` (only while open)."""
        if self.open:
            if isinstance(message, str):
                self.protocol.send_text(message.encode())
            else:
                self.protocol.send_binary(message)

    def ping(self, data: bytes = b"") -> None:
        if self.open:
            self.protocol.send_ping(data)

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake (no-op once started)."""
        if self.open:
            self.protocol.send_close(code, reason[:120])

    def fail(self, code: int, reason: str = "") -> None:
        """Close at once with ``code`` (no-op once closing)."""
        if self.open:
            self.protocol.fail(code, reason[:120])

    def take_output(self) -> bytes:
        """What to write now; sets ``done`` when the library asks for the TCP end."""
        writes = self.protocol.data_to_send()
        if not writes:
            return b""
        if writes[-1] == b"":  # the library's "send EOF"
            self.eof_due = True
        return b"".join(writes)


# The close codes a server sends (RFC 6455 §7.4.1), named for callers.
NORMAL = int(CloseCode.NORMAL_CLOSURE)
GOING_AWAY = int(CloseCode.GOING_AWAY)
POLICY = int(CloseCode.POLICY_VIOLATION)
TOO_BIG = int(CloseCode.MESSAGE_TOO_BIG)
INTERNAL_ERROR = int(CloseCode.INTERNAL_ERROR)
TRY_AGAIN_LATER = int(CloseCode.TRY_AGAIN_LATER)

"""ctypes binding of the parts of libevent 2.1 the comet server needs.

Loads the system ``libevent-2.1.so.7`` (Debian: ``libevent-2.1-7``); nothing is compiled.
Only the public API is declared, plus the two layouts the notes name: ``struct evkeyval``
(the header list) and the leading fields of ``struct evhttp_request`` up to the HTTP
version, for which 2.1 has no accessor.  This module knows nothing of HTTP semantics,
WSGI or Django: it is declarations and a few thin Pythonic helpers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    byref,
    c_char,
    c_char_p,
    c_int,
    c_long,
    c_short,
    c_size_t,
    c_ssize_t,
    c_uint16,
    c_void_p,
)

LIBRARY = "libevent-2.1.so.7"


class LibeventMissing(ImportError):
    """libevent 2.1 is not installed."""


def _load() -> ctypes.CDLL:
    try:
        return ctypes.CDLL(LIBRARY)
    except OSError as exc:
        raise LibeventMissing(
            f"cannot load {LIBRARY} ({exc}); install it with: apt-get install libevent-2.1-7"
        ) from None


lib = _load()

# -- constants (event2/event.h, event2/http.h, event2/bufferevent.h) --------------------
EV_TIMEOUT = 0x01
EV_READ = 0x02
EV_WRITE = 0x04
EV_SIGNAL = 0x08
EV_PERSIST = 0x10

EVLOOP_ONCE = 0x01
EVLOOP_NONBLOCK = 0x02

EVHTTP_REQ_GET = 1 << 0
EVHTTP_REQ_POST = 1 << 1
EVHTTP_REQ_HEAD = 1 << 2
EVHTTP_REQ_PUT = 1 << 3
EVHTTP_REQ_DELETE = 1 << 4
EVHTTP_REQ_OPTIONS = 1 << 5
EVHTTP_REQ_TRACE = 1 << 6
EVHTTP_REQ_CONNECT = 1 << 7
EVHTTP_REQ_PATCH = 1 << 8

METHOD_NAMES = {
    EVHTTP_REQ_GET: "GET",
    EVHTTP_REQ_POST: "POST",
    EVHTTP_REQ_HEAD: "HEAD",
    EVHTTP_REQ_PUT: "PUT",
    EVHTTP_REQ_DELETE: "DELETE",
    EVHTTP_REQ_OPTIONS: "OPTIONS",
    EVHTTP_REQ_TRACE: "TRACE",
    EVHTTP_REQ_CONNECT: "CONNECT",
    EVHTTP_REQ_PATCH: "PATCH",
}
ALL_METHODS = (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT
               | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH)


# -- structures -------------------------------------------------------------------------
class timeval(Structure):
    _fields_ = [("tv_sec", c_long), ("tv_usec", c_long)]

    @classmethod
    def of(cls, seconds: float) -> timeval:
        whole = int(seconds)
        return cls(whole, int(round((seconds - whole) * 1_000_000)))


class evkeyval(Structure):
    """``struct evkeyval`` (event2/keyvalq_struct.h): one header in a list."""


evkeyval._fields_ = [
    ("next", POINTER(evkeyval)),
    ("prev", c_void_p),
    ("key", c_char_p),
    ("value", c_char_p),
]


class evkeyvalq(Structure):
    """``struct evkeyvalq``: TAILQ_HEAD of evkeyval."""

    _fields_ = [("first", POINTER(evkeyval)), ("last", c_void_p)]


class evhttp_request_head(Structure):
    """The leading fields of ``struct evhttp_request`` (event2/http_struct.h, 2.1),
    declared only to read ``major``/``minor``, which have no accessor in 2.1."""

    _fields_ = [
        ("next_tqe_next", c_void_p),
        ("next_tqe_prev", c_void_p),
        ("evcon", c_void_p),
        ("flags", c_int),
        ("input_headers", c_void_p),
        ("output_headers", c_void_p),
        ("remote_host", c_char_p),
        ("remote_port", c_uint16),
        ("host_cache", c_char_p),
        ("kind", c_int),
        ("type", c_int),
        ("headers_size", c_size_t),
        ("body_size", c_size_t),
        ("uri", c_char_p),
        ("uri_elems", c_void_p),
        ("major", c_char),
        ("minor", c_char),
    ]


# -- callback types ----------------------------------------------------------------------
event_callback_fn = CFUNCTYPE(None, c_int, c_short, c_void_p)
evhttp_request_cb = CFUNCTYPE(None, c_void_p, c_void_p)
evhttp_connection_close_cb = CFUNCTYPE(None, c_void_p, c_void_p)


def _declare(name: str, restype: object, *argtypes: object) -> None:
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    globals()[name] = fn


P = c_void_p
# event base and events
_declare("event_base_new", P)
_declare("event_base_free", None, P)
_declare("event_base_loop", c_int, P, c_int)
_declare("event_base_dispatch", c_int, P)
_declare("event_base_loopbreak", c_int, P)
_declare("event_base_loopexit", c_int, P, POINTER(timeval))
_declare("event_base_get_method", c_char_p, P)
_declare("event_base_init_common_timeout", POINTER(timeval), P, POINTER(timeval))
_declare("event_new", P, P, c_int, c_short, event_callback_fn, P)
_declare("event_free", None, P)
_declare("event_add", c_int, P, POINTER(timeval))
_declare("event_del", c_int, P)
_declare("event_active", None, P, c_int, c_short)
_declare("libevent_global_shutdown", None)
_declare("event_get_version", c_char_p)
# evhttp server
_declare("evhttp_new", P, P)
_declare("evhttp_free", None, P)
_declare("evhttp_accept_socket_with_handle", P, P, c_int)
_declare("evhttp_del_accept_socket", None, P, P)
_declare("evhttp_set_gencb", None, P, evhttp_request_cb, P)
_declare("evhttp_set_max_body_size", None, P, c_ssize_t)
_declare("evhttp_set_max_headers_size", None, P, c_ssize_t)
_declare("evhttp_set_timeout", None, P, c_int)
_declare("evhttp_set_allowed_methods", None, P, c_uint16)
_declare("evhttp_set_default_content_type", None, P, c_char_p)
# requests
_declare("evhttp_request_get_uri", c_char_p, P)
_declare("evhttp_request_get_command", c_int, P)
_declare("evhttp_request_get_input_headers", POINTER(evkeyvalq), P)
_declare("evhttp_request_get_output_headers", P, P)
_declare("evhttp_request_get_input_buffer", P, P)
_declare("evhttp_request_get_output_buffer", P, P)
_declare("evhttp_request_get_connection", P, P)
_declare("evhttp_request_free", None, P)
_declare("evhttp_send_reply", None, P, c_int, c_char_p, P)
_declare("evhttp_send_reply_start", None, P, c_int, c_char_p)
_declare("evhttp_send_reply_chunk", None, P, P)
_declare("evhttp_send_reply_end", None, P)
_declare("evhttp_send_error", None, P, c_int, c_char_p)
_declare("evhttp_add_header", c_int, P, c_char_p, c_char_p)
_declare("evhttp_remove_header", c_int, P, c_char_p)
_declare("evhttp_find_header", c_char_p, P, c_char_p)
# connections
_declare("evhttp_connection_get_peer", None, P, POINTER(c_char_p), POINTER(c_uint16))
_declare("evhttp_connection_set_closecb", None, P, evhttp_connection_close_cb, P)
_declare("evhttp_connection_get_bufferevent", P, P)
_declare("evhttp_connection_free", None, P)
# evbuffers
_declare("evbuffer_new", P)
_declare("evbuffer_free", None, P)
_declare("evbuffer_add", c_int, P, c_char_p, c_size_t)
_declare("evbuffer_get_length", c_size_t, P)
_declare("evbuffer_pullup", P, P, c_ssize_t)
# bufferevents (parking: watch for a disconnect while no reply is being written)
_declare("bufferevent_getcb", None, P, POINTER(P), POINTER(P), POINTER(P), POINTER(P))
_declare("bufferevent_setcb", None, P, P, P, P, P)
_declare("bufferevent_enable", c_int, P, c_short)
_declare("bufferevent_disable", c_int, P, c_short)
_declare("bufferevent_set_timeouts", c_int, P, POINTER(timeval), POINTER(timeval))
_declare("bufferevent_setwatermark", None, P, c_short, c_size_t, c_size_t)


# -- thin helpers ------------------------------------------------------------------------
def version() -> str:
    return event_get_version().decode()  # type: ignore[name-defined]  # noqa: F821


_VERSION_OFFSET = evhttp_request_head.major.offset
assert evhttp_request_head.minor.offset == _VERSION_OFFSET + 1


def http_version(request: int) -> tuple[int, int]:
    """The request's HTTP version (major, minor), read from the public struct."""
    major, minor = ctypes.string_at(request + _VERSION_OFFSET, 2)
    return major, minor


def iter_headers(headers: object) -> list[tuple[bytes, bytes]]:
    """The (name, value) pairs of an ``evkeyvalq`` pointer, in order."""
    pairs = []
    node = headers.contents.first  # type: ignore[attr-defined]
    while node:
        item = node.contents
        pairs.append((item.key, item.value))
        node = item.next
    return pairs


def buffer_bytes(buf: int) -> bytes:
    """The whole content of an evbuffer, copied (it is not drained)."""
    length = evbuffer_get_length(buf)  # type: ignore[name-defined]  # noqa: F821
    if not length:
        return b""
    return ctypes.string_at(evbuffer_pullup(buf, -1), length)  # type: ignore[name-defined]  # noqa: F821


def connection_peer(conn: int) -> tuple[str, int]:
    address = c_char_p()
    port = c_uint16()
    evhttp_connection_get_peer(conn, byref(address), byref(port))  # type: ignore[name-defined]  # noqa: F821
    return (address.value or b"").decode("latin-1"), port.value


class BufferEventCallbacks:
    """The raw callbacks of a bufferevent, to restore after a temporary change."""

    __slots__ = ("read", "write", "event", "arg")

    def __init__(self, bev: int) -> None:
        read, write, event, arg = c_void_p(), c_void_p(), c_void_p(), c_void_p()
        bufferevent_getcb(bev, byref(read), byref(write), byref(event), byref(arg))  # type: ignore[name-defined]  # noqa: F821
        self.read, self.write, self.event, self.arg = read.value, write.value, event.value, arg.value


__all__ = [name for name in dir() if not name.startswith("_")]

"""ctypes binding of the parts of libevent 2.1 the comet server needs.

Loads the system ``libevent-2.1.so.7`` (Debian: ``libevent-2.1-7``); nothing is compiled.
Only the public event API is declared: the event base, events on descriptors and
timers (``EV_CLOSED`` notices a peer's close without reading its data).  HTTP is not
libevent's here: evhttp's parser is too lax to face the internet (it lets requests be
smuggled), so ``comet_server.protocol.http1`` frames requests strictly.  This module knows
nothing of HTTP, WSGI or Django.
"""

from __future__ import annotations

import ctypes
import os
from ctypes import CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_long, c_short, c_void_p
from typing import Any

LIBRARY = "libevent-2.1.so.7"


class LibeventMissing(ImportError):
    """libevent 2.1 is not installed."""


def _load(kind: type[ctypes.CDLL]) -> ctypes.CDLL:
    try:
        return kind(LIBRARY)
    except OSError as exc:
        raise LibeventMissing(
            f"cannot load {LIBRARY} ({exc}); install it with: apt-get install libevent-2.1-7"
        ) from None


# Two handles on the one library.  Only the dispatch, which sleeps in epoll, lets
# other threads run meanwhile (``CDLL`` releases the GIL around a call).  Every other
# call returns at once and keeps the GIL (``PyDLL``): the loop thread then does not
# queue for the GIL again behind a pool thread running a view after each
# event_add/event_del (with CPU-bound views that wait is up to a switch interval).
lib = _load(ctypes.CDLL)
held = _load(ctypes.PyDLL)

# -- constants (event2/event.h) ---------------------------------------------------------
EV_READ = 0x02
EV_WRITE = 0x04
EV_PERSIST = 0x10
EV_ET = 0x20  # edge-triggered
EV_CLOSED = 0x80  # the peer closed (EPOLLRDHUP): noticed without reading its data
EVLOOP_ONCE = 0x01  # event_base_loop: wait for events once, run them, return
EVLOOP_NONBLOCK = 0x02  # event_base_loop: run what is ready now, never wait

# -- structures -------------------------------------------------------------------------
class timeval(Structure):
    _fields_ = [("tv_sec", c_long), ("tv_usec", c_long)]

    @classmethod
    def of(cls, seconds: float) -> timeval:
        whole = int(seconds)
        return cls(whole, int(round((seconds - whole) * 1_000_000)))


# -- callback types ----------------------------------------------------------------------
event_callback_fn = CFUNCTYPE(None, c_int, c_short, c_void_p)


def _declare(name: str, restype: object, *argtypes: object, releases_gil: bool = False) -> Any:
    """The C function ``name`` with its result and argument types set (a pointer
    result must be ``c_void_p``: the default ``int`` would truncate it)."""
    fn = getattr(lib if releases_gil else held, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


P = c_void_p
# event base and events
event_base_new = _declare("event_base_new", P)
event_base_free = _declare("event_base_free", None, P)
event_base_dispatch = _declare("event_base_dispatch", c_int, P, releases_gil=True)
# event_base_loop twice: waiting for events in epoll lets other threads run (CDLL);
# running the events already ready keeps the GIL (PyDLL), so the callbacks of one turn
# do not each queue for it again (see loop.EventLoop.run).
event_base_loop_waiting = _declare("event_base_loop", c_int, P, c_int, releases_gil=True)
event_base_loop_ready = _declare("event_base_loop", c_int, P, c_int)
event_base_got_exit = _declare("event_base_got_exit", c_int, P)
event_base_loopbreak = _declare("event_base_loopbreak", c_int, P)
event_base_loopexit = _declare("event_base_loopexit", c_int, P, POINTER(timeval))
event_new = _declare("event_new", P, P, c_int, c_short, event_callback_fn, P)
event_free = _declare("event_free", None, P)
event_add = _declare("event_add", c_int, P, POINTER(timeval))
event_del = _declare("event_del", c_int, P)
event_active = _declare("event_active", None, P, c_int, c_short)
event_get_version = _declare("event_get_version", c_char_p)


def version() -> str:
    return str(event_get_version().decode())


# -- socket I/O that keeps the GIL ---------------------------------------------------------
# ``socket.send``/``recv`` release the GIL around the system call.  On a non-blocking
# socket the call returns at once, and releasing costs the loop thread a wait for the
# GIL to come back, up to a switch interval per call when pool threads run pure-Python
# views.  These call the C library directly and keep the GIL; they raise as the socket
# methods do (``BlockingIOError``, ``InterruptedError``, other ``OSError``).
_libc = ctypes.PyDLL(None, use_errno=True)
_send = _libc.send
_send.restype = ctypes.c_ssize_t
_send.argtypes = [c_int, c_char_p, ctypes.c_size_t, c_int]
_recv = _libc.recv
_recv.restype = ctypes.c_ssize_t
_recv.argtypes = [c_int, c_void_p, ctypes.c_size_t, c_int]
MSG_NOSIGNAL = 0x4000  # a closed peer is an EPIPE error, not a SIGPIPE
RECV_BUFFER = 64 * 1024
_recv_buffer = ctypes.create_string_buffer(RECV_BUFFER)  # the loop thread's only


def _error() -> OSError:
    code = ctypes.get_errno()
    return OSError(code, os.strerror(code))  # OSError picks the subclass by errno


def send(fd: int, data: bytes) -> int:
    """send(2) on a non-blocking socket, keeping the GIL: the bytes taken."""
    if type(data) is not bytes:
        data = bytes(data)
    sent = _send(fd, data, len(data), MSG_NOSIGNAL)
    if sent < 0:
        raise _error()
    return int(sent)


def recv(fd: int, size: int = RECV_BUFFER) -> bytes:
    """recv(2) on a non-blocking socket, keeping the GIL (loop thread only: one
    buffer); ``b""`` at the end of the stream."""
    got = _recv(fd, _recv_buffer, min(size, RECV_BUFFER), 0)
    if got < 0:
        raise _error()
    return ctypes.string_at(_recv_buffer, got)

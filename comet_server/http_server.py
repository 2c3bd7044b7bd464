"""A WSGI server on libevent's evhttp that parks suspended responses.

evhttp parses requests, keeps connections alive, pipelines and frames replies; this
module turns each request into a WSGI call and drives the response.  A plain WSGI
iterable is sent at once.  A *comet response* (an iterable with ``comet_coroutine()``,
see ``comet_server.waits``) is driven step by step: when it yields a wait, the
connection is parked (no thread) until a timer fires or the hub delivers events.

Framing: a body that ends before any wait goes out with Content-Length; body sent
before a wait starts a stream, chunked for HTTP/1.1 and close-delimited for HTTP/1.0.
Knows nothing of Django or chat.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from comet_server import ctypes_event as ev
from comet_server.hub import Hub, Watch
from comet_server.loop import EventLoop, Timer
from comet_server.waits import Delivery, Sleep, WaitForEvents
from comet_server.wsgi_environ import base_environ, build_environ

log = logging.getLogger("comet_server.server")
access_log = logging.getLogger("comet_server.access")

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
               "te", "trailers", "transfer-encoding", "upgrade"}
# What an application may raise without stopping the server: sys.exit() in a view
# is a bug of that view, not a request to stop serving everyone.
APPLICATION_ERRORS = (Exception, SystemExit)


class ServerConfig:
    """Limits and switches of one server (see ``runcomet --help``)."""

    def __init__(self, *, max_body_size: int = 10 * 1024 * 1024, max_header_size: int = 64 * 1024,
                 keepalive_timeout: int = 30, stats_path: str | None = "/_comet/stats",
                 stats_loopback_only: bool = True, shutdown_grace: float = 5.0,
                 multiprocess: bool = False, access_log: bool = True) -> None:
        if max_body_size < 0 or max_header_size < 256 or keepalive_timeout < 1:
            raise ValueError("limits must be positive (header size at least 256 bytes)")
        self.max_body_size = max_body_size
        self.max_header_size = max_header_size
        self.keepalive_timeout = keepalive_timeout
        self.stats_path = stats_path
        self.stats_loopback_only = stats_loopback_only
        self.shutdown_grace = shutdown_grace
        self.multiprocess = multiprocess
        self.access_log = access_log


class _Connection:
    """What we track of one client connection: the exchange it is serving."""

    __slots__ = ("exchange", "peer")

    def __init__(self, peer: tuple[str, str]) -> None:
        self.exchange: Exchange | None = None
        self.peer = peer


class Exchange:
    """One request and the driving of its response."""

    __slots__ = (
        "server", "req", "conn", "method", "target", "version", "status", "code", "reason",
        "headers", "result", "coroutine", "pending", "started", "done", "sent", "t0",
        "parked_since", "parked_total", "timer", "watch", "bev", "resuming", "immediate",
        "stop_answered",
    )

    def __init__(self, server: CometServer, req: int, conn: int, method: str, target: bytes,
                 version: tuple[int, int]) -> None:
        self.server = server
        self.req = req
        self.conn = conn
        self.method = method
        self.target = target
        self.version = version
        self.status = ""
        self.code = 0
        self.reason = b""
        self.headers: list[tuple[str, str]] | None = None
        self.result: Any = None
        self.coroutine: Any = None
        self.pending: list[bytes] = []
        self.started = False
        self.done = False
        self.sent = 0
        self.t0 = time.monotonic()
        self.parked_since = 0.0
        self.parked_total = 0.0
        self.timer: Timer | None = None
        self.watch: Watch | None = None
        self.bev = 0
        self.resuming = True
        self.immediate: Any = None
        self.stop_answered = False

    # -- WSGI call ------------------------------------------------------------------

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.headers is not None:
            raise AssertionError("start_response called twice without exc_info")
        if not isinstance(status, str) or len(status) < 4 or not status[:3].isdigit() \
                or status[3] != " ":
            raise ValueError(f"bad WSGI status {status!r}")
        for name, value in headers:
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"header {name!r}: names and values must be str")
            if name.lower() in _HOP_BY_HOP:
                raise ValueError(f"hop-by-hop header {name!r} is the server's business")
        self.status = status
        self.code = int(status[:3])
        self.reason = status[4:].encode("latin-1")
        self.headers = list(headers)
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable: buffered like yielded data."""
        if not isinstance(data, bytes):
            raise TypeError("write() takes bytes")
        if data:
            self.pending.append(data)

    def run(self, app: WSGIApp, environ: dict) -> None:
        """Call the application and send or park its response."""
        try:
            result = self.result = app(environ, self.start_response)
            factory = None if type(result) is list else getattr(result, "comet_coroutine", None)
            if factory is not None:
                self.coroutine = factory()
                self.step(None)
            else:
                for chunk in self.result:
                    if not isinstance(chunk, bytes):
                        raise TypeError("WSGI body chunks must be bytes, "
                                        f"not {type(chunk).__name__}")
                    if chunk:
                        self.pending.append(chunk)
                self.finish()
        except APPLICATION_ERRORS:
            self.fail("application error")

    # -- driving a comet coroutine ---------------------------------------------------

    def step(self, outcome: Any) -> None:
        """Advance the coroutine until it waits or ends."""
        server = self.server
        while True:
            try:
                item = self.coroutine.send(outcome)
            except StopIteration:
                self.finish()
                return
            outcome = None
            if isinstance(item, bytes):
                if item:
                    self.pending.append(item)
            elif server.stopping and isinstance(item, (Sleep, WaitForEvents)):
                # Shutting down: a long-poll gets one empty answer (clients re-poll);
                # any further wait, or a wait in a stream, ends the response.
                if isinstance(item, WaitForEvents) and not self.started \
                        and not self.stop_answered:
                    self.stop_answered = True
                    outcome = Delivery([])
                    continue
                self.finish()
                return
            elif isinstance(item, WaitForEvents):
                ready = server.hub.events_after(item.channels, item.after)
                if ready:
                    outcome = Delivery(ready)
                    continue
                self.park(item)
                if self.immediate is None:
                    return
                outcome, self.immediate = self.immediate, None
                self.unpark()
            elif isinstance(item, Sleep):
                self.park(item)
                return
            else:
                raise TypeError(f"a comet coroutine yielded {type(item).__name__}, "
                                "expected bytes, Sleep or WaitForEvents")

    def park(self, wait: Sleep | WaitForEvents) -> None:
        """Send what is buffered, then wait without a thread."""
        server = self.server
        if self.pending:
            self.flush()
        elif not self.started:
            self.watch_for_disconnect()
        self.parked_since = time.monotonic()
        server.parked += 1
        if isinstance(wait, Sleep):
            self.timer = server.loop.call_later(wait.seconds, self.on_timer)
        else:
            # Still "resuming" while registering: an event that is already there is
            # handed to step() through self.immediate instead of re-entering it.
            self.watch = server.hub.watch(wait.channels, wait.after, self.on_delivery)
            if self.watch is not None:
                self.timer = server.loop.call_later(wait.timeout, self.on_timeout)
        if self.immediate is None:
            self.resuming = False

    def watch_for_disconnect(self) -> None:
        """Notice a parked client going away (evhttp stops reading before calling us).

        Do what evhttp does while it writes a reply: read with no read callback, so a
        FIN or RST fires the close callback and pipelined bytes stay buffered.  The
        connection timeouts are lifted while parked and restored before replying.
        """
        bev = self.bev = ev.evhttp_connection_get_bufferevent(self.conn)
        cbs = ev.BufferEventCallbacks(bev)
        ev.bufferevent_setcb(bev, None, cbs.write, cbs.event, cbs.arg)
        ev.bufferevent_set_timeouts(bev, None, None)
        # Pipelined bytes wait in the input buffer; past one maximal request more
        # cannot be legitimate, so stop reading there instead of buffering without end.
        ev.bufferevent_setwatermark(bev, ev.EV_READ, 0, self.server.max_pipelined)
        ev.bufferevent_enable(bev, ev.EV_READ)

    def unpark(self) -> None:
        server = self.server
        server.parked -= 1
        self.parked_total += time.monotonic() - self.parked_since
        self.resuming = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.watch is not None:
            server.hub.cancel(self.watch)
            self.watch = None
        if self.bev and not self.started:
            timeout = server.timeouts
            ev.bufferevent_set_timeouts(self.bev, timeout, timeout)

    def resume(self, outcome: Any) -> None:
        if self.done:
            return
        self.unpark()
        try:
            self.step(outcome)
        except APPLICATION_ERRORS:
            self.fail("application error")

    def on_timer(self) -> None:
        self.timer = None
        self.resume(None)

    def on_timeout(self) -> None:
        self.timer = None
        self.resume(self.server.timeout_delivery())

    def on_delivery(self, delivery: Delivery) -> None:
        self.watch = None
        if not self.resuming:
            self.resume(delivery)
        else:  # delivered while we were registering: step() picks it up
            self.immediate = delivery

    # -- sending --------------------------------------------------------------------

    def set_headers(self) -> tuple[int, int | None]:
        """Put the application's headers on the reply; return them and its Content-Length."""
        if self.headers is None:
            raise AssertionError("the application returned without calling start_response")
        out = ev.evhttp_request_get_output_headers(self.req)
        declared = None
        for name, value in self.headers:
            if ev.evhttp_add_header(out, name.encode("latin-1"), value.encode("latin-1")) != 0:
                raise ValueError(f"header {name!r} has a value evhttp refuses (CR or LF?)")
            if len(name) == 14 and name.lower() == "content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise ValueError(f"bad Content-Length {value!r}") from None
        return out, declared

    def flush(self) -> None:
        """Send buffered body data, starting the stream if needed (never an empty chunk)."""
        data = b"".join(self.pending)
        self.pending.clear()
        if not self.started:
            self.set_headers()
            if self.version < (1, 1):
                # HTTP/1.0 streams end with the connection: make evhttp close it.
                ev.evhttp_remove_header(ev.evhttp_request_get_input_headers(self.req),
                                        b"Connection")
            ev.evhttp_send_reply_start(self.req, self.code, self.reason)
            self.started = True
            self.server.streaming += 1
            # A stream may pause longer than the idle timeout: no read timeout.
            self.bev = ev.evhttp_connection_get_bufferevent(self.conn)
            ev.bufferevent_set_timeouts(self.bev, None, self.server.timeouts)
        if data and self.method != "HEAD":
            scratch = self.server.scratch  # evhttp moves its content out: reusable
            ev.evbuffer_add(scratch, data, len(data))
            ev.evhttp_send_reply_chunk(self.req, scratch)
            self.sent += len(data)

    def finish(self) -> None:
        """Send the rest of the response and end it."""
        if self.started:
            if self.pending:
                self.flush()
            ev.evhttp_send_reply_end(self.req)
            self.server.streaming -= 1
        else:
            pending = self.pending
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            out, declared = self.set_headers()
            if declared is not None and declared != len(data) and self.method != "HEAD":
                raise ValueError(f"Content-Length {declared} but the body has {len(data)} bytes")
            if declared is None and self.code >= 200 and self.code not in (204, 304):
                # evhttp adds it only for HTTP/1.1 and keep-alive; HEAD says what GET sends.
                ev.evhttp_add_header(out, b"Content-Length", b"%d" % len(data))
            if data and self.method != "HEAD":  # evhttp would send a HEAD body as is
                scratch = self.server.scratch  # evhttp moves its content out: reusable
                ev.evbuffer_add(scratch, data, len(data))
                ev.evhttp_send_reply(self.req, self.code, self.reason, scratch)
            else:
                ev.evhttp_send_reply(self.req, self.code, self.reason, None)
            self.sent = len(data)
        self.complete(self.code)

    def fail(self, why: str) -> None:
        """The application failed: 500 if nothing was sent yet, else cut the connection."""
        log.error("%s: %s %s", why, self.method, self.target.decode("latin-1"),
                  exc_info=sys.exc_info()[0] is not None)
        if self.done:
            return
        if self.parked_since and not self.resuming:
            self.unpark()
        if not self.started:
            out = ev.evhttp_request_get_output_headers(self.req)
            ev.evhttp_add_header(out, b"Content-Type", b"text/plain; charset=utf-8")
            body = b"Internal Server Error\n"
            ev.evbuffer_add(ev.evhttp_request_get_output_buffer(self.req), body, len(body))
            ev.evhttp_send_reply(self.req, 500, b"Internal Server Error", None)
            self.complete(500)
        else:
            # The client must not mistake a broken stream for a complete one.
            self.server.streaming -= 1
            self.server.abort_connection(self.conn)
            self.complete(self.code, aborted=True)

    def complete(self, code: int, *, aborted: bool = False, gone: bool = False) -> None:
        """Forget the request (libevent owns or has freed it) and close the iterable."""
        self.done = True
        self.req = 0
        server = self.server
        record = server.connections.get(self.conn)
        if record is not None and record.exchange is self:
            record.exchange = None
        self.close_result()
        if server.access_log and access_log.isEnabledFor(logging.INFO):
            peer = record.peer[0] if record is not None else "-"
            parked = f" parked {self.parked_total * 1000:.0f}ms" if self.parked_total else ""
            note = " client gone" if gone else " aborted" if aborted else ""
            access_log.info('%s "%s %s HTTP/%d.%d" %d %d %.1fms%s%s', peer, self.method,
                            self.target.decode("latin-1"), self.version[0], self.version[1],
                            code, self.sent, (time.monotonic() - self.t0) * 1000, parked, note)

    def close_result(self) -> None:
        coroutine, self.coroutine = self.coroutine, None
        result, self.result = self.result, None
        try:
            if coroutine is not None:
                coroutine.close()
        except Exception:
            log.exception("error closing the comet coroutine")
        if type(result) is list:  # the common plain response: nothing to close
            return
        try:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        except Exception:
            log.exception("error in the response iterable's close()")

    def client_gone(self) -> None:
        """The connection closed under a parked or streaming response."""
        if self.done:
            return
        if not self.resuming:
            self.unpark()
        if self.started:
            self.server.streaming -= 1
        req = self.req
        if req and not ev.evhttp_request_get_connection(req):
            ev.evhttp_request_free(req)  # libevent detached it: it is ours to free
        self.complete(499, gone=True)


class CometServer:
    """Serve one WSGI application on a listening socket with a libevent loop."""

    def __init__(self, app: WSGIApp, sock: socket.socket, *, hub: Hub,
                 config: ServerConfig | None = None, loop: EventLoop | None = None) -> None:
        self.app = app
        self.hub = hub
        self.config = config or ServerConfig()
        self.loop = loop or EventLoop()
        self.server_address: tuple[str, int] = sock.getsockname()[:2]
        self.connections: dict[int, _Connection] = {}
        self.parked = 0
        self.streaming = 0
        self.requests_total = 0
        self.started_at = time.time()
        self.stopping = False
        self.timeouts = ev.timeval.of(self.config.keepalive_timeout)
        self._stats_path = (self.config.stats_path or "").encode()
        self.access_log = self.config.access_log
        self.max_pipelined = self.config.max_header_size + self.config.max_body_size
        self._timeout_delivery: Delivery | None = None
        self._base_environ = base_environ(server=self.server_address,
                                          multiprocess=self.config.multiprocess)
        self.scratch = ev.evbuffer_new()
        self._request_cb = ev.evhttp_request_cb(self._on_request)
        self._close_cb = ev.evhttp_connection_close_cb(self._on_close)
        self._http = ev.evhttp_new(self.loop.base)
        if not self._http:
            raise OSError("evhttp_new failed")
        cfg = self.config
        ev.evhttp_set_max_body_size(self._http, cfg.max_body_size)
        ev.evhttp_set_max_headers_size(self._http, cfg.max_header_size)
        ev.evhttp_set_timeout(self._http, cfg.keepalive_timeout)
        ev.evhttp_set_allowed_methods(self._http, ev.ALL_METHODS)
        ev.evhttp_set_default_content_type(self._http, None)
        ev.evhttp_set_gencb(self._http, self._request_cb, None)
        sock.setblocking(False)  # else the loop freezes in accept()
        self._listener = ev.evhttp_accept_socket_with_handle(self._http, sock.detach())
        if not self._listener:
            raise OSError("evhttp_accept_socket_with_handle failed")
        hub.set_scheduler(self.loop.call_soon, lambda fn: self.loop.call_later(0, fn))

    # -- requests -------------------------------------------------------------------

    def _on_request(self, req: int, arg: int | None) -> None:
        exchange = None
        try:
            self.requests_total += 1
            conn = ev.evhttp_request_get_connection(req)
            record = self.connections.get(conn)
            if record is None:
                address, port = ev.connection_peer(conn)
                record = self.connections[conn] = _Connection((address, str(port)))
                ev.evhttp_connection_set_closecb(conn, self._close_cb, conn)
            method = ev.METHOD_NAMES.get(ev.evhttp_request_get_command(req), "GET")
            target = ev.evhttp_request_get_uri(req) or b"/"
            version = ev.http_version(req)
            exchange = Exchange(self, req, conn, method, target, version)
            record.exchange = exchange
            if self._stats_path and target.partition(b"?")[0] == self._stats_path:
                self._answer_stats(exchange, record.peer[0])
                return
            environ = build_environ(
                self._base_environ, method=method, target=target, version=version,
                headers=ev.iter_headers(ev.evhttp_request_get_input_headers(req)),
                read_body=lambda: ev.buffer_bytes(ev.evhttp_request_get_input_buffer(req)),
                remote=record.peer,
            )
            exchange.run(self.app, environ)
        except BaseException as exc:
            if exchange is not None and not exchange.done:
                exchange.fail("server error")
            else:
                log.exception("error in request callback")
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                self.loop.stop()

    def _on_close(self, conn: int, arg: int | None) -> None:
        try:
            record = self.connections.pop(conn, None)
            if record is not None and record.exchange is not None:
                record.exchange.client_gone()
        except BaseException:
            log.exception("error in connection close callback")

    def timeout_delivery(self) -> Delivery:
        """The empty delivery of long-polls timing out in this loop turn: one shared
        memo, so thousands parked at the same moment share one render when they expire
        together, as they share one when an event wakes them."""
        delivery = self._timeout_delivery
        if delivery is None:
            delivery = self._timeout_delivery = Delivery([])

            def forget() -> None:
                self._timeout_delivery = None

            self.loop.call_soon(forget)
        return delivery

    def abort_connection(self, conn: int) -> None:
        """Cut a connection at the loop's next turn (never inside libevent's own calls)."""

        def cut() -> None:
            if conn in self.connections:
                self.connections[conn].exchange = None
                ev.evhttp_connection_free(conn)

        self.loop.call_soon(cut)

    # -- stats ----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {
            "parked": self.parked,
            "streaming": self.streaming,
            "connections": len(self.connections),
            "requests_total": self.requests_total,
            "published_total": self.hub.published_total,
            "waiters": self.hub.waiting(),
            "uptime_s": round(time.time() - self.started_at, 3),
            "stopping": self.stopping,
        }

    def _answer_stats(self, exchange: Exchange, peer: str) -> None:
        if self.config.stats_loopback_only and not _is_loopback(peer):
            exchange.start_response("403 Forbidden", [("Content-Type", "text/plain")])
            exchange.pending.append(b"stats are for loopback clients only\n")
        else:
            exchange.start_response("200 OK", [("Content-Type", "application/json"),
                                               ("Cache-Control", "no-store")])
            exchange.pending.append(json.dumps(self.stats()).encode())
        exchange.finish()

    # -- running and stopping -------------------------------------------------------

    def serve_forever(self, *, handle_signals: bool = True) -> None:
        """Run until SIGTERM/SIGINT (when on the main thread) or ``shutdown()``."""
        if handle_signals:
            import signal

            for signum in (signal.SIGTERM, signal.SIGINT):
                self.loop.add_signal_handler(signum, self.shutdown)
        try:
            self.loop.run()
        finally:
            self.hub.set_scheduler(None)
            ev.evhttp_free(self._http)  # closes idle connections and the listener
            self._http = None
            ev.evbuffer_free(self.scratch)
            self.loop.close()

    def shutdown(self) -> None:
        """Stop accepting, answer parked requests so clients re-poll, then leave the loop.

        A second call (a second Ctrl-C) leaves at once.
        """
        if self.stopping:
            log.warning("stopping now")
            self.loop.stop()
            return
        log.info("shutting down: %d parked, %d streaming", self.parked, self.streaming)
        self.stopping = True
        if self._listener:
            ev.evhttp_del_accept_socket(self._http, self._listener)
            self._listener = None
        for record in list(self.connections.values()):
            exchange = record.exchange
            if exchange is not None and not exchange.done and not exchange.resuming:
                if exchange.watch is not None:  # a long-poll: answered empty, re-polled
                    exchange.stop_answered = not exchange.started
                    exchange.resume(Delivery([]))
                else:  # a timer: go on now; the next wait ends the response
                    exchange.resume(None)
        deadline = time.monotonic() + self.config.shutdown_grace

        def wait_for_drain() -> None:
            busy = any(r.exchange is not None for r in self.connections.values())
            if busy and time.monotonic() < deadline:
                self.loop.call_later(0.05, wait_for_drain)
            else:
                self.loop.stop(after=0.1)  # let the last replies be written

        wait_for_drain()


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket (IPv6 when ``host`` has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(backlog)
    return sock

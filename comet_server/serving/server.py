"""The comet server: a WSGI application on a libevent loop, with suspended responses.

Wiring only: the ``Acceptor`` takes connections within their caps, each
``HTTPConnection`` frames requests strictly (``http1``) and hands them here, and each
request becomes an ``Exchange`` that drives the application's response, parking it
without a thread when it waits.  Also the JSON stats, and the drain: on SIGTERM stop
accepting, answer every parked request, end every stream, then leave.
The operator's endpoints are answered here, before the application: the JSON stats,
the Prometheus metrics (``metrics``), and the health checks ``/_comet/live`` and
``/_comet/ready`` for load balancers.
Knows nothing of Django or chat.
"""

from __future__ import annotations

import json
import logging
import os
import random
import resource
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from comet_server.loop import EventLoop
from comet_server.protocol import forwarded, http1, websocket
from comet_server.protocol.acceptor import Acceptor
from comet_server.protocol.connection import ConnState, HTTPConnection
from comet_server.protocol.responder import Responder
from comet_server.protocol.wsgi_environ import base_environ, build_environ
from comet_server.push.events import Delivery
from comet_server.push.hub import Hub
from comet_server.push.waits import STREAM_LIFETIME_JITTER, FollowEvents, SocketPlan
from comet_server.serving.config import ServerConfig
from comet_server.serving.exchange import Exchange, Phase, Resumptions, WSGIApp
from comet_server.serving.metrics import (
    STATUS_CLASSES,
    LagProbe,
    ServerMetrics,
    SnapshotStore,
    exposition,
    process_figures,
)
from comet_server.serving.pool import WorkerPool
from comet_server.serving.snapshot import BrokerLink, LiveFigures, ServerStats, WorkerSnapshot
from comet_server.serving.websocket import WebSocketSession, upgrade_to_websocket

log = logging.getLogger("comet_server.serving.server")
access_log = logging.getLogger("comet_server.access")

DRAIN_BUDGET = 0.02  # seconds of answering parked requests per loop turn when draining
FD_RESERVE_FRACTION = 8  # 1/8 of the descriptors stay for the database, broker, files
LIVE_PATH = b"/_comet/live"
READY_PATH = b"/_comet/ready"

__all__ = ["CometServer", "WSGIApp", "listen", "default_max_connections"]


def default_max_connections() -> int:
    """Connections per process when not set: the descriptor limit minus a reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(16, soft - max(32, soft // FD_RESERVE_FRACTION))


def raise_fd_limit() -> None:
    """Raise the soft descriptor limit to the hard one (what the server may hold)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


class CometServer:
    """Serve one WSGI application on a listening socket with a libevent loop."""

    def __init__(self, app: WSGIApp, sock: socket.socket, *, hub: Hub,
                 config: ServerConfig | None = None, loop: EventLoop | None = None) -> None:
        self.app = app
        self.hub = hub
        cfg = self.config = config or ServerConfig()
        self.loop = loop or EventLoop()
        self.server_address: tuple[str, int] = sock.getsockname()[:2]
        self.connections: set[HTTPConnection] = set()
        self.parked = 0  # exchanges waiting (long-polls, timers)
        self.streaming = 0  # responses whose body is under way
        self.following = 0  # event streams following the hub
        self.slow_streams = 0  # event streams and WebSockets cut for holding too much unread
        self.websockets = 0  # open WebSockets
        self.max_stream_buffer = cfg.max_stream_buffer
        self.requests_total = 0
        self.refused_total: Counter[int] = Counter()
        self.started_at = time.time()
        self.stopping = False
        # What connections read from (see connection.ConnectionOwner).
        self.limits = http1.Limits(max_head=cfg.max_header_size, max_body=cfg.max_body_size)
        self.head_timeout = cfg.head_timeout
        self.keepalive_timeout = cfg.keepalive_timeout
        self.min_body_rate = cfg.min_body_rate
        self.body_bytes = 0
        self.max_body_bytes_total = cfg.max_body_bytes_total
        self.access_log = cfg.access_log
        # Behind a trusted proxy the client is the one X-Forwarded-For names; the
        # per-client cap then counts its requests in flight (the proxy pools sockets).
        self.forwarded_allow = frozenset(cfg.forwarded_allow_ips)
        max_connections = cfg.max_connections or default_max_connections()
        self.max_per_client = per_client_cap(cfg.max_connections_per_client, max_connections)
        self.proxied: dict[str, int] = {}
        self.pid = os.getpid()
        self._empty_delivery: Delivery | None = None
        self._base_environ = base_environ(server=self.server_address,
                                          multiprocess=cfg.multiprocess)
        self.acceptor = Acceptor(self.loop, sock, self._on_connection,
                                 max_connections=max_connections,
                                 max_per_client=self.max_per_client,
                                 proxies=frozenset(cfg.forwarded_allow_ips))
        hub.set_scheduler(self.loop.call_soon, lambda fn: self.loop.call_later(0, fn))
        # Application code runs on these threads; the loop applies what they make.
        self.pool = WorkerPool(self.loop, cfg.threads, cfg.max_queued)
        self.resumptions = Resumptions(self.loop, self.pool)
        if cfg.threads:
            self.loop.call_later(min(1.0, cfg.slow_request / 2), self._watch_slow)
        hub.set_signal_window(cfg.signal_window, self.loop.call_later)
        # Metrics: four numbers a response on the request path, folded when read.
        self.metrics: ServerMetrics | None = None
        self.store = SnapshotStore(cfg.metrics_dir) if cfg.metrics_dir else None
        self.lag_probe: LagProbe | None = None
        if cfg.metrics_path:
            self.metrics = ServerMetrics()
            hub.on_fanout = self.metrics.fanout_seconds.observe
            self.lag_probe = LagProbe(self.loop, self.metrics,
                                      self._write_snapshot if self.store else None)
            self.lag_probe.start()
        # The operator's paths, answered before the application.
        self._internal: dict[bytes, Callable[[Exchange, forwarded.Client], None]] = {
            LIVE_PATH: self._answer_live, READY_PATH: self._answer_ready}
        if cfg.stats_path:
            self._internal[cfg.stats_path.encode()] = self._answer_stats
        if cfg.metrics_path:
            self._internal[cfg.metrics_path.encode()] = self._answer_metrics

    # -- connections (connection.ConnectionOwner) -----------------------------------

    def _on_connection(self, sock: socket.socket, peer: tuple[str, str], key: str) -> None:
        self.connections.add(HTTPConnection(self, sock, peer, key))

    def forget(self, conn: HTTPConnection) -> None:
        self.connections.discard(conn)
        self.acceptor.released(conn.key)

    def refused(self, conn: HTTPConnection, error: http1.ProtocolError) -> None:
        self.refused_total[error.status] += 1
        if self.access_log and access_log.isEnabledFor(logging.INFO):
            access_log.info('%s "-" %d refused: %s', conn.peer[0], error.status, error.reason)

    def serve(self, conn: HTTPConnection, request: http1.Request) -> None:
        """Serve one complete request (the connection reads no more meanwhile)."""
        handshake = None
        if request.headers and websocket.is_upgrade(request):
            try:
                if self.stopping:
                    raise http1.ProtocolError(503, "Service Unavailable", "draining")
                handshake = websocket.accept(
                    request, max_message=self.config.websocket_max_message)
            except http1.ProtocolError as error:
                conn.refuse(error)
                return
        self.requests_total += 1
        client = forwarded.resolve(conn.peer, request.headers, self.forwarded_allow)
        exchange = Exchange(self, conn, request, client.address)
        conn.begin(exchange)
        if client.proxied and self.max_per_client:
            if self.proxied.get(client.address, 0) >= self.max_per_client:
                self.acceptor.hits["max_per_client"] += 1
                exchange.start_response("503 Service Unavailable", [
                    ("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "5")])
                exchange.pending.append(b"too many requests from your address\n")
                exchange.finish()
                return
            self.proxied[client.address] = self.proxied.get(client.address, 0) + 1
            exchange.counted = True
        internal = self._internal.get(request.target.partition(b"?")[0])
        if internal is not None:
            internal(exchange, client)
            return
        body = request.body
        environ = build_environ(
            self._base_environ, method=request.method, target=request.target,
            version=request.version, headers=client.headers, read_body=lambda: body,
            remote=(client.address, client.port),
        )
        if handshake is not None:
            environ["comet.websocket"] = handshake
        if client.scheme != "http":
            environ["wsgi.url_scheme"] = client.scheme
        try:
            exchange.run(self.app, environ)
        except BaseException as exc:
            if exchange.phase is not Phase.DONE:
                exchange.fail("server error")
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                raise
            log.exception("error serving a request")

    def run_job(self, job: Callable[[], Any], done: Callable[[BaseException | None], None],
                *, label: str = "") -> None:
        """Run application code of an admitted WebSocket (``on_message``, ``on_close``)
        on the pool; ``done(error or None)`` on the loop thread."""
        self.pool.submit(job, lambda outcome: done(outcome.error), admit=False, label=label)

    def upgrade(self, conn: HTTPConnection, handshake: websocket.Handshake, plan: SocketPlan,
                response: Responder) -> None:
        """A view accepted a WebSocket: the connection leaves HTTP."""
        upgrade_to_websocket(self, conn, handshake, plan, response)

    def release_client(self, exchange: Exchange) -> None:
        """A request counted against its (proxied) client's cap is over."""
        count = self.proxied.get(exchange.client, 0) - 1
        if count > 0:
            self.proxied[exchange.client] = count
        else:
            self.proxied.pop(exchange.client, None)

    def empty_delivery(self) -> Delivery:
        """The empty delivery of long-polls answered without events in this loop turn
        (timeouts, drain): one shared memo, so thousands answered together share one
        render, as they share one when an event wakes them."""
        delivery = self._empty_delivery
        if delivery is None:
            delivery = self._empty_delivery = Delivery([])

            def forget() -> None:
                self._empty_delivery = None

            self.loop.call_soon(forget)
        return delivery

    def stream_duration(self, wait: FollowEvents) -> float:
        """How long a new event stream stays open: its own duration, else the
        server's lifetime, less a random part of up to 10% (streams opened together,
        say after a restart, then do not all reconnect together)."""
        lifetime = wait.duration if wait.duration is not None else self.config.stream_lifetime
        return lifetime * (1 - STREAM_LIFETIME_JITTER * random.random())

    # -- stats ----------------------------------------------------------------------

    def live_figures(self) -> LiveFigures:
        """What ``stats()`` and ``snapshot()`` share: read from the live server."""
        acceptor, pool = self.acceptor, self.pool
        return LiveFigures(
            connections=len(self.connections),
            requests_total=self.requests_total,
            parked=self.parked,
            streaming=self.streaming,
            event_streams=self.following,
            event_streams_cut_slow=self.slow_streams,
            websockets=self.websockets,
            waiters=self.hub.waiting(),
            published_total=self.hub.published_total,
            accepting=not acceptor.paused and not acceptor.closed,
            stopping=self.stopping,
            body_bytes_held=self.body_bytes,
            threads=pool.threads,
            threads_busy=pool.busy,
            queued=pool.queued,
            queue_refused_total=pool.refused_total,
            uptime_s=round(time.time() - self.started_at, 3),
            cap_hits=dict(acceptor.hits),
            refused_total={str(k): v for k, v in sorted(self.refused_total.items())},
        )

    def stats(self) -> ServerStats:
        """The JSON stats (``/_comet/stats``): the live figures and the caps."""
        acceptor = self.acceptor
        return ServerStats(
            **self.live_figures(),
            connections_by_state=dict(Counter(conn.state.value for conn in self.connections)),
            signal_windows_open=self.hub.signal_windows(),
            caps={
                "max_connections": acceptor.max_connections,
                "max_connections_per_client": acceptor.max_per_client,
                "max_body_size": self.limits.max_body,
                "max_header_size": self.limits.max_head,
                "max_body_bytes_total": self.max_body_bytes_total,
                "head_timeout_s": self.head_timeout,
                "keepalive_timeout_s": self.keepalive_timeout,
                "max_stream_buffer": self.max_stream_buffer,
                "max_queued": self.pool.queue_depth,
                "signal_window_s": self.config.signal_window,
            },
        )

    def snapshot(self) -> WorkerSnapshot:
        """This process's numbers for the metrics (plain JSON: it also goes to the
        snapshot file other workers read)."""
        metrics = self.metrics
        assert metrics is not None
        metrics.fold()
        waits = self.pool.take_waits()
        if waits:
            metrics.queued_seconds.observe_many(waits)
        broker = self.hub.broker
        by_class = metrics.responses_by_class
        rss, fds = process_figures()
        return WorkerSnapshot(
            **self.live_figures(),
            worker=self.pid,
            time=time.time(),
            accepted_total=self.acceptor.accepted_total,
            delivered_total=self.hub.delivered_total,
            bytes_written=metrics.bytes_written,
            not_delivered=metrics.not_delivered,
            responses={label: by_class[i] for i, label in enumerate(STATUS_CLASSES, 1)},
            rss_bytes=rss,
            open_fds=fds,
            loop_lag_last_s=metrics.last_lag,
            request_seconds=metrics.request_seconds.to_json(),
            parked_seconds=metrics.parked_seconds.to_json(),
            fanout_seconds=metrics.fanout_seconds.to_json(),
            loop_lag_seconds=metrics.loop_lag_seconds.to_json(),
            queued_seconds=metrics.queued_seconds.to_json(),
            broker=None if broker is None else BrokerLink(
                connected=bool(getattr(broker, "connected", True)),
                reconnects=int(getattr(broker, "reconnects", 0))),
        )

    def worker_snapshots(self) -> list[Mapping[str, Any]]:
        """Every worker's snapshot: this one's now, the others' from their files."""
        own = self.snapshot()
        return [own, *(self.store.others(self.pid) if self.store else ())]

    def _write_snapshot(self) -> None:
        if self.store is not None:
            self.store.write(self.snapshot())

    def readiness(self) -> list[str]:
        """Why this process should get no new traffic (empty: ready)."""
        reasons = []
        if self.stopping:
            reasons.append("draining")
        elif self.acceptor.paused:
            reasons.append("at the connection cap")
        broker = self.hub.broker
        if broker is not None and not getattr(broker, "connected", True):
            reasons.append("broker not connected")
        return reasons

    def _answer(self, exchange: Exchange, status: str, body: bytes,
                content_type: str = "application/json") -> None:
        exchange.start_response(status, [("Content-Type", content_type),
                                         ("Cache-Control", "no-store")])
        exchange.pending.append(body)
        exchange.finish()

    def _private(self, exchange: Exchange, client: forwarded.Client) -> bool:
        """Refuse operational data to remote clients unless --stats-public (a request
        that claims a forward from an untrusted peer is never a loopback one)."""
        if self.config.stats_public or client.loopback:
            return False
        self._answer(exchange, "403 Forbidden", b"for loopback clients only\n", "text/plain")
        return True

    def _answer_stats(self, exchange: Exchange, client: forwarded.Client) -> None:
        if not self._private(exchange, client):
            self._answer(exchange, "200 OK", json.dumps(self.stats()).encode())

    def _answer_metrics(self, exchange: Exchange, client: forwarded.Client) -> None:
        if not self._private(exchange, client):
            body, content_type = exposition(self.worker_snapshots)
            self._answer(exchange, "200 OK", body, content_type)

    def _answer_live(self, exchange: Exchange, client: forwarded.Client) -> None:
        """Answered from the loop: that it answers at all says the loop turns."""
        lag = self.metrics.last_lag if self.metrics is not None else None
        self._answer(exchange, "200 OK", json.dumps({"live": True, "loop_lag_s": lag}).encode())

    def _answer_ready(self, exchange: Exchange, client: forwarded.Client) -> None:
        reasons = self.readiness()
        status = "503 Service Unavailable" if reasons else "200 OK"
        self._answer(exchange, status,
                     json.dumps({"ready": not reasons, "reasons": reasons}).encode())

    # -- running and draining -------------------------------------------------------

    def _watch_slow(self) -> None:
        """Log, once each, the jobs that run longer than --slow-request, with the
        stack of their thread (as gunicorn logs a timed-out worker; the worker here
        goes on: its loop still turns)."""
        threshold = self.config.slow_request
        for label, seconds, stack in self.pool.slow(threshold):
            log.warning("slow request: %s has run for %.1fs (--slow-request %g); its "
                        "thread's stack:\n%s", label, seconds, threshold, stack.rstrip())
        self.loop.call_later(min(1.0, threshold / 2), self._watch_slow)

    def serve_forever(self, *, handle_signals: bool = True) -> None:
        """Run until SIGTERM/SIGINT (when on the main thread) or ``shutdown()``."""
        if handle_signals:
            import signal

            for signum in (signal.SIGTERM, signal.SIGINT):
                self.loop.add_signal_handler(signum, self.shutdown)
        try:
            self.loop.run()
        finally:
            if self.lag_probe is not None:
                self.lag_probe.stop()
            self.hub.on_fanout = None
            self.hub.set_scheduler(None)
            self.acceptor.close()
            for conn in list(self.connections):
                conn.close()
            # Views still running past the grace are left to the process's exit.
            self.pool.close(timeout=0.1)
            self.loop.close()

    def shutdown(self) -> None:
        """Drain: stop accepting, answer every parked request (long-polls get an empty
        answer and re-poll elsewhere; streams end with their last chunk), close idle
        connections, then leave the loop.  A second call leaves at once."""
        if self.stopping:
            log.warning("stopping now")
            self.loop.stop()
            return
        log.info("draining: %d connections, %d parked, %d streaming (%d event streams), "
                 "%d running on threads, %d queued", len(self.connections), self.parked,
                 self.streaming, self.following, self.pool.busy, self.pool.queued)
        self.stopping = True
        self.acceptor.close()
        parked: list[Exchange] = []
        for conn in list(self.connections):
            exchange = conn.exchange
            if isinstance(exchange, Exchange):
                parked.append(exchange)
            elif isinstance(conn.upgraded, WebSocketSession):
                conn.upgraded.going_away()  # close 1001: the client reconnects elsewhere
            elif conn.state is ConnState.IDLE:
                # Between requests: closing is safe (a fresh connection whose request
                # is on its way is left to be served, with Connection: close).
                conn.close()
        self._answer_slice(parked, 0)
        deadline = time.monotonic() + self.config.shutdown_grace

        def wait_for_drain() -> None:
            busy = any(conn.state is not ConnState.LINGERING or conn.out
                       for conn in self.connections)
            if busy and time.monotonic() < deadline:
                self.loop.call_later(0.02, wait_for_drain)
                return
            if busy:
                log.warning("drain: %d connections still busy after %.1fs; closing them",
                            len(self.connections), self.config.shutdown_grace)
            self.loop.stop()

        wait_for_drain()

    def _answer_slice(self, parked: list[Exchange], start: int) -> None:
        """Answer parked exchanges for at most DRAIN_BUDGET, then yield to the loop."""
        end_by = time.monotonic() + DRAIN_BUDGET
        index = start
        while index < len(parked):
            parked[index].stop_waiting()
            index += 1
            if time.monotonic() > end_by:
                break
        if index < len(parked):
            self.loop.call_later(0, lambda: self._answer_slice(parked, index))


def per_client_cap(configured: int, max_connections: int) -> int:
    """The connections one address may hold: the option, but never more than three
    quarters of the process's cap, so one address always leaves room for the others
    (0: no cap)."""
    if not configured:
        return 0
    return max(1, min(configured, max_connections - max_connections // 4))


def listen(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket (IPv6 when ``host`` has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(backlog)
    return sock

"""The server's configuration: one frozen dataclass whose fields carry their own help,
bounds and parser, so the command lines (``comet_server.serving.options``), the environment
(``COMET_<NAME>``) and the README table are all generated from this one place.

No Django, no I/O: values are checked in ``__post_init__`` and a bad one raises
``ValueError`` naming the option in one line.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from comet_server.push.waits import STREAM_HEARTBEAT, STREAM_LIFETIME


def option(default: Any, help: str, *, minimum: float | None = None,
           parse: Callable[[str], Any] | None = None, shown: str | None = None) -> Any:
    """A configuration field that is also a command-line flag and an env variable.

    ``parse`` turns the text of a flag or variable into the value (default: the
    field's own type); ``shown`` is how the default reads in help and README."""
    return field(default=default, metadata={
        "help": help, "minimum": minimum, "parse": parse, "shown": shown})


LOG_FORMATS = ("text", "json")
# Connections one address may hold: a NAT of ~1000 tabs, a small part of the server.
DEFAULT_PER_CLIENT = 2048


def _log_format(text: str) -> str:
    word = text.strip().lower()
    if word not in LOG_FORMATS:
        raise ValueError(f"not a log format: {text!r} (use text or json)")
    return word


def _addresses(text: str | tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(text, tuple):
        return text
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Limits and switches of one server (``runcomet --help`` lists them)."""

    workers: int = option(1, "worker processes sharing the port, pre-forked and "
                          "supervised (more than 1 needs COMET_BROKER)", minimum=1)
    max_body_size: int = option(1 << 20, "largest request body in bytes (413 above it, "
                                "before the body is read)", minimum=0, shown="1 MiB")
    max_header_size: int = option(64 << 10, "largest request head in bytes (431 above it); "
                                  "also the most a pipelining client makes the server "
                                  "buffer", minimum=256, shown="64 KiB")
    max_body_bytes_total: int = option(64 << 20, "bytes all unfinished request bodies may "
                                       "hold together (503 above it)", minimum=0,
                                       shown="64 MiB")
    head_timeout: float = option(10.0, "seconds a client has to send a whole request head, "
                                 "from its first byte or the accept (408 after)",
                                 minimum=0.1)
    min_body_rate: int = option(1024, "bytes/s a request body must average over 10 s "
                                "windows (408 below it)", minimum=0)
    keepalive_timeout: float = option(30.0, "seconds an idle keep-alive connection is kept; "
                                      "a reply not read for that long is cut", minimum=1)
    max_connections: int = option(0, "open connections per process; at the cap the "
                                  "listener pauses (0: the descriptor limit, raised to the "
                                  "hard limit at start, minus 1/8)", minimum=0)
    max_connections_per_client: int = option(
        DEFAULT_PER_CLIENT, "open connections per client address, 503 past it (0: no cap; "
        "never more than 3/4 of --max-connections); behind a trusted proxy, requests in "
        "flight per forwarded address. The default serves a NAT of about a thousand "
        "browser tabs (a stream or long-poll and a post each) and stops one address from "
        "holding the server", minimum=0)
    forwarded_allow_ips: tuple[str, ...] = option((), "comma-separated proxy addresses "
                                                  "whose X-Forwarded-For/-Proto (or "
                                                  "Forwarded) name the client and scheme; "
                                                  "from any other peer those headers are "
                                                  "removed, and such a request is never a "
                                                  "loopback one", parse=_addresses,
                                                  shown="none")
    stream_lifetime: float = option(STREAM_LIFETIME, "seconds an event stream stays open "
                                    "(less up to 10%, so streams opened together do not "
                                    "end together); its client then reconnects and resumes, "
                                    "which rebalances streams across processes", minimum=1)
    stream_heartbeat: float = option(STREAM_HEARTBEAT, "seconds without a write before an "
                                     "event stream gets a comment line (proxies and "
                                     "clients notice dead connections)", minimum=0.1)
    max_stream_buffer: int = option(1 << 20, "bytes an event stream or a WebSocket may hold "
                                    "unread by its client; past it the connection is cut "
                                    "(the client resumes from its last event id)",
                                    minimum=1024, shown="1 MiB")
    websocket_max_message: int = option(1 << 20, "largest message a WebSocket client may "
                                        "send, in bytes, fragments together (close 1009 "
                                        "above it)", minimum=125, shown="1 MiB")
    websocket_ping_interval: float = option(20.0, "seconds without hearing from a WebSocket "
                                            "client before it is pinged", minimum=0.1)
    websocket_idle_timeout: float = option(60.0, "seconds without hearing from a WebSocket "
                                           "client (not even a pong) before its connection "
                                           "is dropped", minimum=0.2)
    threads: int = option(8, "threads that run application code (the WSGI call, the "
                          "body, renders of woken long-polls and event streams); a parked "
                          "or streaming response holds none (0: run it all on the event "
                          "loop's thread, one step at a time)", minimum=0)
    max_queued: int = option(10000, "requests that may wait for a free thread; past it 503 "
                             "with Retry-After (parked polls, streams and health checks "
                             "are served meanwhile)", minimum=1)
    slow_request: float = option(30.0, "seconds a request's application code may run "
                                 "before its thread's stack is logged (once)", minimum=0.1)
    signal_window: float = option(2.0, "seconds a signal (typing, presence) may wait before "
                                  "it wakes parked long-polls: the first wakes them at once, "
                                  "the rest of the window's wake them once, together, at its "
                                  "end; a message wakes them at once with the held signals "
                                  "(event streams get every signal at once; 0: no waiting)",
                                  minimum=0)
    shutdown_grace: float = option(5.0, "seconds a drain may take before the rest is "
                                   "closed", minimum=0)
    worker_timeout: float = option(30.0, "seconds a pre-fork worker may go without a "
                                   "heartbeat (its event loop blocked; views run on threads "
                                   "and do not count) before the master kills and replaces "
                                   "it", minimum=1)
    stats_path: str = option("/_comet/stats", "path of the JSON stats ('' disables them)")
    stats_public: bool = option(False, "answer stats and metrics to any client, not only "
                                "loopback ones")
    metrics_path: str = option("/metrics", "path of the Prometheus metrics of every worker "
                               "('' disables metrics and the loop-lag probe)")
    access_log: bool = option(True, "log a line per response (client, request, status, "
                              "bytes, time, parked time, whether it was delivered)")
    log_format: str = option("text", "log lines as text, or json (one object per line, "
                             "the access fields named)", parse=_log_format)
    ready_fd: int = option(0, "write the bound port and a newline to this inherited file "
                           "descriptor once listening, then close it (for supervisors and "
                           "tests; 0: none)", minimum=0)
    # Where pre-fork workers leave their metrics snapshots (made by the runner).
    metrics_dir: str = field(default="", metadata={})

    @property
    def multiprocess(self) -> bool:
        """Several processes serve (WSGI's ``wsgi.multiprocess``)."""
        return self.workers > 1

    def __post_init__(self) -> None:
        for spec in fields(self):
            minimum = spec.metadata.get("minimum")
            value = getattr(self, spec.name)
            if minimum is not None and value < minimum:
                raise ValueError(f"{flag(spec.name)} must be at least {minimum:g}, "
                                 f"got {value}")
        if self.max_body_bytes_total < self.max_body_size:
            raise ValueError("--max-body-bytes-total must hold at least one body "
                             "(--max-body-size)")
        if self.websocket_idle_timeout <= self.websocket_ping_interval:
            raise ValueError("--websocket-idle-timeout must be longer than "
                             "--websocket-ping-interval (a pong must have time to come)")
        object.__setattr__(self, "forwarded_allow_ips", _addresses(self.forwarded_allow_ips))
        object.__setattr__(self, "log_format", _log_format(self.log_format))
        for address in self.forwarded_allow_ips:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"--forwarded-allow-ips: {address!r} is not an IP "
                                 "address") from None


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    return "COMET_" + name.upper()

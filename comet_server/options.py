"""The server's options, defined once: flag, setting/environment name, type, default, help.

Both command lines (``manage.py runcomet`` and ``python -m comet_server``) add their
flags from ``SERVER_OPTIONS`` and build a ``ServerConfig`` with ``config_from``; a
flag's default comes from the Django setting or environment variable of the same
name (``COMET_HEAD_TIMEOUT`` for ``--head-timeout``), parsed strictly.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from comet_server.server import ServerConfig
from comet_server.settings import setting, setting_bool


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # the ServerConfig keyword
    kind: type  # int, float, str or bool
    default: Any
    help: str
    minimum: float = 0

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "COMET_" + self.name.upper()


SERVER_OPTIONS = (
    Option("max_body_size", int, 1 << 20, "largest request body in bytes (413 above it)"),
    Option("max_header_size", int, 64 << 10,
           "largest request head in bytes (431 above it)", minimum=256),
    Option("max_body_bytes_total", int, 64 << 20,
           "bytes all unfinished request bodies may hold together (503 above it)"),
    Option("head_timeout", float, 10.0,
           "seconds a client has to send a whole request head (408 after)", minimum=0.1),
    Option("min_body_rate", int, 1024,
           "bytes/s a request body must average over 10 s windows (408 below it)"),
    Option("keepalive_timeout", float, 30.0,
           "seconds an idle keep-alive connection is kept", minimum=1),
    Option("max_connections", int, 0,
           "open connections per process (0: the descriptor limit minus a reserve)"),
    Option("max_connections_per_client", int, 0,
           "open connections per client address (0: no cap); behind a trusted proxy, "
           "requests in flight per address its X-Forwarded-For names"),
    Option("forwarded_allow_ips", str, "",
           "comma-separated proxy addresses whose X-Forwarded-For names the client "
           "(REMOTE_ADDR, the per-client cap); empty: trust none"),
    Option("shutdown_grace", float, 5.0, "seconds a drain may take before closing the rest"),
    Option("worker_timeout", float, 30.0,
           "seconds a pre-fork worker may go without a heartbeat (its loop blocked) before "
           "the master kills and replaces it", minimum=1),
    Option("stats_path", str, "/_comet/stats", "path of the JSON stats ('' to disable)"),
    Option("stats_public", bool, False, "answer stats to any client, not only loopback"),
    Option("access_log", bool, True, "log a line per response"),
)


def _number(option: Option, raw: Any) -> Any:
    try:
        value = option.kind(raw)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{option.flag} must be a number, got {raw!r}") from None
    if value < option.minimum:
        raise argparse.ArgumentTypeError(
            f"{option.flag} must be at least {option.minimum:g}, got {raw}")
    return value


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every server option, defaults read from settings or the environment."""
    for option in SERVER_OPTIONS:
        if option.kind is bool:
            default = setting_bool(option.env, option.default)
            if option.default:
                parser.add_argument("--no-" + option.flag[2:], dest=option.name,
                                    action="store_false", default=default,
                                    help=f"do not {option.help}")
            else:
                parser.add_argument(option.flag, dest=option.name, action="store_true",
                                    default=default, help=option.help)
        elif option.kind is str:
            parser.add_argument(option.flag, dest=option.name,
                                default=setting(option.env, option.default), help=option.help)
        else:
            parser.add_argument(option.flag, dest=option.name,
                                type=lambda raw, o=option: _number(o, raw),
                                default=_number(option, setting(option.env, option.default)),
                                help=f"{option.help} (default {option.default})")


def config_from(values: dict[str, Any], *, multiprocess: bool) -> ServerConfig:
    """A ServerConfig from parsed arguments (argparse's namespace as a dict)."""
    kwargs = {o.name: values[o.name] for o in SERVER_OPTIONS}
    kwargs["stats_loopback_only"] = not kwargs.pop("stats_public")
    kwargs["stats_path"] = kwargs["stats_path"] or None
    try:
        return ServerConfig(**kwargs, multiprocess=multiprocess)
    except ValueError as exc:  # e.g. a forwarded-allow-ips entry that is no address
        raise ValueError(f"bad server option: {exc}") from None

"""``python -m comet_server module:app [host:]port``: serve any WSGI application.

For Django projects use ``manage.py runcomet``; this entry point is for plain WSGI
apps (and the benchmarks).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from comet_server.runner import serve
from comet_server.server import ServerConfig


def load_app(spec: str) -> object:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr or "application")
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"cannot load WSGI app {spec!r}: {exc}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m comet_server", description=__doc__)
    parser.add_argument("app", help="module:attribute of a WSGI application")
    parser.add_argument("bind", nargs="?", default="127.0.0.1:8000", help="[host:]port")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--keepalive-timeout", type=int, default=30)
    parser.add_argument("--max-body-size", type=int, default=10 << 20)
    parser.add_argument("--no-access-log", action="store_false", dest="access_log")
    args = parser.parse_args(argv)
    host, _, port = args.bind.rpartition(":")
    if not port.isdigit():
        parser.error(f"bad bind address {args.bind!r}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.path.insert(0, ".")
    app = load_app(args.app)
    config = ServerConfig(keepalive_timeout=args.keepalive_timeout,
                          max_body_size=args.max_body_size, multiprocess=args.workers > 1,
                          access_log=args.access_log)

    def announce(bound: int) -> None:
        print(f"comet server listening on http://{host or '127.0.0.1'}:{bound}/", flush=True)

    serve(app, host or "127.0.0.1", int(port), config=config, workers=args.workers,
          announce=announce)


if __name__ == "__main__":
    main()

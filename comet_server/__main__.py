"""The comet-server command: serve any WSGI application (see DESCRIPTION)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from comet_server.serving.exchange import WSGIApp
from comet_server.serving.options import add_server_arguments, config_from
from comet_server.serving.runner import serve


def load_app(spec: str) -> WSGIApp:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        app: WSGIApp = getattr(module, attr or "application")
        return app
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"cannot load WSGI app {spec!r}: {exc}") from None


DEFAULT_BIND = "127.0.0.1:8000"
# Shown by --help as it is: plain text, no reStructuredText markup.
DESCRIPTION = """Serve any WSGI application: comet-server module:app [host:]port
(or python -m comet_server ...).  For Django projects use manage.py runcomet; this
command is for plain WSGI apps (and the benchmarks)."""


def main(argv: list[str] | None = None) -> None:
    invoked = "comet-server" if sys.argv[0].endswith("comet-server") else "python -m comet_server"
    parser = argparse.ArgumentParser(prog=invoked, description=DESCRIPTION)
    parser.add_argument("app", help="module:attribute of a WSGI application")
    parser.add_argument("bind", nargs="?", default=DEFAULT_BIND,
                        help=f"[host:]port to listen on (default {DEFAULT_BIND})")
    add_server_arguments(parser)
    args = parser.parse_args(argv)
    host, _, port = args.bind.rpartition(":")
    if not port.isdigit():
        parser.error(f"bad bind address {args.bind!r}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.path.insert(0, ".")
    app = load_app(args.app)
    try:
        config = config_from(vars(args))
    except ValueError as exc:
        parser.error(str(exc))

    def announce(bound: int) -> None:
        print(f"comet server listening on http://{host or '127.0.0.1'}:{bound}/", flush=True)

    serve(app, host or "127.0.0.1", int(port), config=config, announce=announce)


if __name__ == "__main__":
    main()

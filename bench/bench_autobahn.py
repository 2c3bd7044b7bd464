"""Autobahn TestSuite conformance of ``/demo/echo``, beside the ``websockets`` library's
own echo server, in one run.

The cases are the Autobahn TestSuite's own case files driven by ``kosoku`` (a runner
on PyPI, ``pip install kosoku``) in fuzzingclient mode: 1-7 (framing, pings, reserved
bits, opcodes, fragmentation, UTF-8, closing), 9.1-9.2 (large text and binary
messages, up to 16 MiB: both servers get a 32 MiB message bound for this run) and 10
(auto-fragmentation).  The echo of a 16 MiB message is 16 MiB unread at once, so
``--max-stream-buffer`` (which cuts a socket past 1 MiB unread by default) is raised
too for this run.  Prints, per server, how many cases passed and the ones that
did not, with their verdicts.

Usage: ``python bench/bench_autobahn.py [--cases 1.* 2.* ...] [--parallelism 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kosoku import FailureError, run_fuzzingclient  # noqa: E402
from websockets.sync.server import ServerConnection, serve  # noqa: E402

from tests.helpers.proc import PRODUCTION_ENV, child_env, launch, runcomet_argv  # noqa: E402

CASES = ("1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.1.*", "9.2.*", "10.*")
MAX_MESSAGE = 32 << 20


def run_cases(url: str, cases: Sequence[str], parallelism: int) -> list[Any]:
    """Every case's result against the server at ``url``."""
    async def go() -> list[Any]:
        try:
            return list(await run_fuzzingclient(url, list(cases), concurrency=parallelism))
        except FailureError as failure:
            return list(failure.results)
    return asyncio.run(go())


def summary(results: list[Any]) -> tuple[int, list[tuple[str, str, str]]]:
    """(cases passed, [(case, behaviour, close behaviour) of the others])."""
    failed = [(r.case_id, r.behavior.value, r.behavior_close.value)
              for r in results if not r.passed]
    return len(results) - len(failed), failed


def _echo(connection: ServerConnection) -> None:
    for message in connection:
        connection.send(message)


@contextmanager
def websockets_echo() -> Iterator[str]:
    """The ``websockets`` library's own echo server (threads), on a free port."""
    with serve(_echo, "127.0.0.1", 0, max_size=MAX_MESSAGE, compression=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        host, port = server.socket.getsockname()[:2]
        try:
            yield f"ws://{host}:{port}/"
        finally:
            server.shutdown()


@contextmanager
def comet_echo() -> Iterator[str]:
    """``runcomet`` serving the chat site, whose ``/demo/echo`` is the echo socket."""
    server = launch(runcomet_argv("--websocket-max-message", str(MAX_MESSAGE),
                                  "--max-stream-buffer", str(2 * MAX_MESSAGE),
                                  "--no-access-log"),
                    env=child_env(PRODUCTION_ENV), name="autobahn-comet")
    try:
        yield server.url("/demo/echo").replace("http://", "ws://")
    finally:
        server.close()


def compare(cases: Sequence[str], parallelism: int) -> dict[str, tuple[int, list[Any]]]:
    """Both servers' summaries, in one run."""
    out = {}
    with comet_echo() as url:
        out["comet /demo/echo"] = summary(run_cases(url, cases, parallelism))
    with websockets_echo() as url:
        out["websockets echo"] = summary(run_cases(url, cases, parallelism))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--parallelism", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("websockets").setLevel(logging.CRITICAL)  # the cases' errors, on purpose
    results = compare(args.cases, args.parallelism)
    print(f"Autobahn cases {' '.join(args.cases)} (kosoku fuzzingclient)")
    for name, (passed, failed) in results.items():
        print(f"  {name:<18} passed {passed:>4}, not passed {len(failed):>3}")
        for case, behaviour, close in failed:
            print(f"      {case:<10} {behaviour:<14} close: {close}")


if __name__ == "__main__":
    main()

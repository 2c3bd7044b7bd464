"""Issue 15's done-when figure: with four views sleeping 2 s on the pool's threads, how
long ``/_comet/live`` takes, and a publish until the last of 200 parked long-polls has
its answer (targets: 100 ms and 300 ms).  Uses tests/test_server_threads.py's server
and bench app; prints one line per round.

    .venv/bin/python bench/bench_slow_views.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from tests import test_server_threads as harness  # noqa: E402

POLLS = 200
SLOW_VIEWS = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = harness._start(Path(tempfile.mkdtemp()))
    try:
        for round_ in range(args.rounds):
            channel = f"slow-{uuid.uuid4().hex[:8]}"
            polls = [harness._send(server.port, f"/wait/{channel}?after=0&timeout=30")
                     for _ in range(POLLS)]
            server.wait_stats(lambda s: s["parked"] >= POLLS)
            slow = [harness._send(server.port, "/block?s=2") for _ in range(SLOW_VIEWS)]
            harness._busy(server, SLOW_VIEWS)
            started = time.monotonic()
            requests.get(server.url("/_comet/live"), timeout=5)
            live = time.monotonic() - started
            started = time.monotonic()
            requests.post(server.url(f"/pub/{channel}?cursor=1"), data=json.dumps("hi"),
                          timeout=5)
            for sock in polls:
                harness._answer(sock)
            publish = time.monotonic() - started
            for sock in slow:
                harness._answer(sock)
            print(f"round {round_ + 1}: {SLOW_VIEWS} views sleeping 2 s: /_comet/live "
                  f"{live * 1000:.1f} ms (target 100), publish -> last of {POLLS} parked "
                  f"polls {publish * 1000:.1f} ms (target 300)", flush=True)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()

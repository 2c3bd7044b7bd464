"""What the metrics cost: hello-world requests/s and a 10,000-waiter fan-out, with
metrics on (the default) and off (``--metrics-path ''``), in one run.

The two servers alternate round by round on the same load (the machine is shared:
compare the ratio, not the absolute figures); hello keeps each side's best run, the
fan-out each side's median.  For a count a busy machine does not move, see
``bench/bench_instructions.py --also="--metrics-path="``.

Run from the repo root: ``.venv/bin/python bench/bench_metrics.py [--parked N] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    HOST,
    BenchError,
    ServerError,
    busy_note,
    print_table,
    raise_fd_limit,
    save_results,
    status,
    verdict,
    wrk,
)
from bench.bench_server import bench_parked, comet_server

TARGET_COST = 0.03  # metrics may cost at most 3%
SIDES = {"metrics on": (), "metrics off": ("--metrics-path", "")}


def hello(seconds: float, warmup: float, rounds: int) -> dict[str, list[float]]:
    runs: dict[str, list[float]] = {side: [] for side in SIDES}
    for round_no in range(1, rounds + 1):
        for side, options in SIDES.items():
            with comet_server("bench.apps:hello", *options) as server:
                url = f"http://{HOST}:{server.port}/"
                status(f"hello {round_no}/{rounds}: {side}: wrk -t1 -c50 -d{seconds:g}s")
                wrk(url, seconds=warmup)
                runs[side].append(wrk(url, seconds=seconds)["rps"])
                server.check_alive()
    return runs


def fanout(parked: int, rounds: int) -> dict[str, dict]:
    return {side: bench_parked(parked, rounds, options) for side, options in SIDES.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parked", type=int, default=None,
                        help="waiters of the fan-out (default 10000, 1000 with --quick)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="hello runs and fan-outs per side (default 3, 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run")
    args = parser.parse_args()
    parked = args.parked or (1000 if args.quick else 10000)
    rounds = args.rounds or (1 if args.quick else 3)
    seconds, warmup = (2.0, 1.0) if args.quick else (5.0, 1.0)
    if parked + 200 > raise_fd_limit():
        parser.error(f"--parked {parked} needs more file descriptors")
    started = time.monotonic()
    load = os.getloadavg()[0]
    try:
        rps = hello(seconds, warmup, rounds)
        fan = fanout(parked, rounds)
    except (BenchError, ServerError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"bench_metrics: FAILED: {exc}", file=sys.stderr)
        return 1
    on, off = max(rps["metrics on"]), max(rps["metrics off"])
    hello_cost = 1 - on / off
    fan_on = fan["metrics on"]["median"]["all_ms"]
    fan_off = fan["metrics off"]["median"]["all_ms"]
    fan_cost = fan_on / fan_off - 1
    rows = [
        ("hello req/s, metrics on (best)", f"{on:,.0f}", "", ""),
        ("hello req/s, metrics off (best)", f"{off:,.0f}", "", ""),
        ("hello: cost of the metrics", f"{hello_cost:+.1%}", f"< {TARGET_COST:.0%}",
         verdict(hello_cost < TARGET_COST)),
        (f"publish -> all {parked:,} answers, metrics on (median)", f"{fan_on:.0f} ms", "", ""),
        (f"publish -> all {parked:,} answers, metrics off (median)", f"{fan_off:.0f} ms",
         "", ""),
        ("fan-out: cost of the metrics", f"{fan_cost:+.1%}", f"< {TARGET_COST:.0%}",
         verdict(fan_cost < TARGET_COST)),
    ]
    for side in SIDES:
        rows.append((f"hello req/s each run, {side}",
                     ", ".join(f"{r:,.0f}" for r in rps[side]), "", ""))
        rows.append((f"fan-out each round, {side}",
                     ", ".join(f"{f['all_ms']:.0f}" for f in fan[side]["rounds"]) + " ms",
                     "", ""))
        rows.append((f"RSS per parked, {side}", f"{fan[side]['kib_per_parked']:.2f} KiB",
                     "", ""))
    print_table(f"cost of the metrics ({os.cpu_count()} CPUs, load {load:.1f} at start; "
                f"took {time.monotonic() - started:.0f} s)", rows)
    busy_note(load)
    save_results("bench_metrics", {"hello_rps": rps, "fanout": fan, "hello_cost": hello_cost,
                                   "fanout_cost": fan_cost, "loadavg_at_start": load})
    return 0


if __name__ == "__main__":
    sys.exit(main())

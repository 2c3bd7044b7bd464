"""What the metrics cost: hello-world requests and a 10,000-waiter fan-out, with
metrics on (the default) and off (``--metrics-path ''``), in one run.

The two servers alternate round by round on the same load.  On a shared machine
requests/s and fan-out times move by tens of percent from run to run, far more than
the metrics cost, so the figures compared are the server's own CPU time (``/proc``:
user + system) per hello request and per fan-out, summed over the rounds; requests/s
and times are printed too.  For a count a busy machine does not move at all, see
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
    cpu_seconds,
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


def hello(seconds: float, warmup: float, rounds: int) -> dict[str, list[dict]]:
    """Each round: wrk against each side; requests/s and server CPU per request."""
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for round_no in range(1, rounds + 1):
        for side, options in SIDES.items():
            with comet_server("bench.apps:hello", *options) as server:
                url = f"http://{HOST}:{server.port}/"
                status(f"hello {round_no}/{rounds}: {side}: wrk -t1 -c50 -d{seconds:g}s")
                wrk(url, seconds=warmup)
                cpu0 = cpu_seconds(server.pid)
                result = wrk(url, seconds=seconds)
                cpu = cpu_seconds(server.pid) - cpu0
                runs[side].append({"rps": result["rps"], "cpu_s": cpu,
                                   "requests": result["rps"] * round(seconds)})
                server.check_alive()
    return runs


def fanout(parked: int, rounds: int) -> dict[str, dict]:
    return {side: bench_parked(parked, rounds, options) for side, options in SIDES.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parked", type=int, default=None,
                        help="waiters of the fan-out (default 10000, 1000 with --quick)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="hello runs and fan-outs per side (default 5, 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run")
    args = parser.parse_args()
    parked = args.parked or (1000 if args.quick else 10000)
    rounds = args.rounds or (1 if args.quick else 5)
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
    def cpu_us(side: str) -> float:  # server CPU per request, all rounds together
        return sum(r["cpu_s"] for r in rps[side]) / sum(r["requests"] for r in rps[side]) * 1e6

    def fan_cpu(side: str) -> float:
        return sum(f["server_cpu_ms"] for f in fan[side]["rounds"]) / len(fan[side]["rounds"])

    hello_cost = cpu_us("metrics on") / cpu_us("metrics off") - 1
    fan_cost = fan_cpu("metrics on") / fan_cpu("metrics off") - 1
    rows = [
        ("hello: server CPU per request, metrics on", f"{cpu_us('metrics on'):.1f} us", "", ""),
        ("hello: server CPU per request, metrics off", f"{cpu_us('metrics off'):.1f} us",
         "", ""),
        ("hello: cost of the metrics (CPU per request)", f"{hello_cost:+.1%}",
         f"< {TARGET_COST:.0%}", verdict(hello_cost < TARGET_COST)),
        (f"fan-out to {parked:,}: server CPU, metrics on (mean)",
         f"{fan_cpu('metrics on'):.0f} ms", "", ""),
        (f"fan-out to {parked:,}: server CPU, metrics off (mean)",
         f"{fan_cpu('metrics off'):.0f} ms", "", ""),
        ("fan-out: cost of the metrics (CPU)", f"{fan_cost:+.1%}", f"< {TARGET_COST:.0%}",
         verdict(fan_cost < TARGET_COST)),
    ]
    for side in SIDES:
        rows.append((f"hello req/s each run, {side}",
                     ", ".join(f"{r['rps']:,.0f}" for r in rps[side]), "", ""))
        rows.append((f"fan-out CPU each round, {side}",
                     ", ".join(f"{f['server_cpu_ms']:.0f}" for f in fan[side]["rounds"])
                     + " ms", "", ""))
        rows.append((f"publish -> all answers each round, {side}",
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

"""Benchmarks of the bare comet server (issue 2 targets), with plain WSGI apps.

a. hello-world requests/s against gunicorn sync -w 1: the cost of the server itself;
b. RSS per parked request at N parked: what an idle long-poll costs in memory;
c. one publish until all N waiters have read their complete answer: the fan-out.

Run from the repo root: ``.venv/bin/python bench/bench_server.py [--parked N] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    HOST,
    ONE_ADDRESS,
    VENV_BIN,
    BenchError,
    LongPolls,
    ServerError,
    ServerProcess,
    busy_note,
    cpu_seconds,
    free_port,
    percentile,
    print_table,
    raise_fd_limit,
    save_results,
    status,
    verdict,
    wait_parked,
    wrk,
)
from tests.helpers.proc import wsgi_app_argv  # noqa: E402  (after the sys.path line)

TARGET_RATIO = 5.0
TARGET_KIB_PER_PARKED = 4.0
TARGET_FANOUT_MS = 300.0
WARMUP_PARKED = 200


def comet_server(app: str, *options: str) -> ServerProcess:
    """Our server on ``app`` (started by ``with``)."""
    return ServerProcess(wsgi_app_argv(app, "--no-access-log", *ONE_ADDRESS, *options),
                         name=f"comet-{app.rsplit(':', 1)[-1]}")


def bench_hello(seconds: float, warmup: float, rounds: int) -> dict:
    """wrk against our server and gunicorn sync with one worker, same app, same load.

    The contenders alternate for ``rounds`` rounds and each keeps its best run: the
    machine is shared, and a noisy neighbour only ever makes a run slower.
    """
    runs: dict[str, list[dict]] = {"comet_server": [], "gunicorn sync -w1": []}
    for round_no in range(1, rounds + 1):
        for name in runs:
            if name == "comet_server":
                server = comet_server("bench.apps:hello")
            else:  # no --ready-fd: ready once its port accepts
                port = free_port()
                server = ServerProcess([str(VENV_BIN / "gunicorn"), "-w", "1", "-b",
                                        f"{HOST}:{port}", "--log-level", "warning",
                                        "bench.apps:hello"], name="gunicorn", ready_fd=False,
                                       port=port, stats_path="")
            with server:
                url = f"http://{HOST}:{server.port}/"
                status(f"hello {round_no}/{rounds}: {name}: warm-up {warmup:g}s, "
                       f"then wrk -t1 -c50 -d{seconds:g}s")
                wrk(url, seconds=warmup)
                runs[name].append(wrk(url, seconds=seconds))
                server.check_alive()
    return {name: {**max(results, key=lambda r: r["rps"]),
                   "all_rps": [r["rps"] for r in results]}
            for name, results in runs.items()}


def bench_parked(parked: int, rounds: int, options: tuple[str, ...] = ()) -> dict:
    """RSS per parked request, then the fan-out of one publish to all of them.

    The fan-out is repeated ``rounds`` times on the same (kept-alive) connections;
    the median is the figure, and the RSS after the last re-park shows any leak.
    """
    request = f"GET /wait HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    publish = (f"POST /publish HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\n\r\n"
               "hello").encode()
    with comet_server("bench.apps:comet", *options) as server:
        # Warm-up: one full park/publish round so code paths, imports and the
        # allocator's first arenas are in place before the baseline is taken.
        warm = LongPolls(server.port, request)
        try:
            warm.open(WARMUP_PARKED, server=server)
            with socket.create_connection((HOST, server.port), timeout=10) as pub:
                pub.sendall(publish)
                warm.collect(timeout=30)
                pub.recv(4096)
        finally:
            warm.close()
        wait_parked(server, 0, 5)
        time.sleep(0.5)
        rss_before = server.rss_kib()

        polls = LongPolls(server.port, request)
        fanouts: list[dict] = []
        try:
            status(f"parking {parked} GET /wait")
            open_s = polls.open(parked, server=server)
            stats = wait_parked(server, parked, 30)
            time.sleep(0.5)  # let the loop settle before reading RSS
            rss_after = rss_last = server.rss_kib()
            pub = socket.create_connection((HOST, server.port), timeout=30)
            for round_no in range(1, rounds + 1):
                if round_no > 1:
                    polls.repark(server=server)
                    time.sleep(0.5)
                    rss_last = server.rss_kib()
                early = polls.answered_early()
                if early:
                    raise BenchError(f"{early} parked requests were answered before the publish")
                status(f"fan-out {round_no}/{rounds}: one publish to {parked} waiters")
                cpu0 = cpu_seconds(server.pid)
                t0 = time.perf_counter()
                pub.sendall(publish)
                done = polls.collect(timeout=60)
                answer = pub.recv(4096)
                cpu = cpu_seconds(server.pid) - cpu0
                if not answer.startswith(b"HTTP/1.1 200 "):
                    raise BenchError(f"publish answered {answer[:100]!r}")
                bodies = set(polls.bodies())
                if len(bodies) != 1 or json.loads(bodies.pop())[0]["payload"] != {"text": "hello"}:
                    raise BenchError("the waiters did not all get the published event")
                latencies = sorted((t - t0) * 1000 for t in done)
                fanouts.append({"all_ms": latencies[-1], "p50_ms": percentile(latencies, 50),
                                "p99_ms": percentile(latencies, 99), "first_ms": latencies[0],
                                "server_cpu_ms": cpu * 1000})
            pub.close()
            server.check_alive()
        finally:
            polls.close()
    median = sorted(fanouts, key=lambda f: f["all_ms"])[len(fanouts) // 2]
    return {
        "parked": parked,
        "park_seconds": round(open_s, 2),
        "stats_at_peak": stats,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_last_round_kib": rss_last,
        "kib_per_parked": (rss_after - rss_before) / parked,
        "rounds": fanouts,
        "median": median,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parked", type=int, default=None,
                        help="parked requests for b and c (default 10000, 1000 with --quick)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="hello runs per contender (best kept) and fan-outs (median "
                             "kept); default 3 and 3, 1 and 1 with --quick")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1000 parked, 2 s wrk")
    args = parser.parse_args()
    parked = args.parked or (1000 if args.quick else 10000)
    seconds, warmup = (2.0, 1.0) if args.quick else (5.0, 1.0)
    hello_rounds = args.rounds or (1 if args.quick else 3)
    fan_rounds = args.rounds or (1 if args.quick else 3)
    limit = raise_fd_limit()
    if parked + 200 > limit:
        parser.error(f"--parked {parked} needs more file descriptors than the limit ({limit})")
    started = time.monotonic()
    try:
        load = os.getloadavg()[0]
        hello = bench_hello(seconds, warmup, hello_rounds)
        fan = bench_parked(parked, fan_rounds)
    except (BenchError, ServerError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"bench_server: FAILED: {exc}", file=sys.stderr)
        return 1
    ours, theirs = hello["comet_server"], hello["gunicorn sync -w1"]
    ratio = ours["rps"] / theirs["rps"]
    med = fan["median"]
    fan_all = ", ".join(f"{f['all_ms']:.0f}" for f in fan["rounds"])
    rows = [
        ("hello req/s, comet_server", f"{ours['rps']:,.0f}", "", ""),
        ("hello req/s, gunicorn sync -w1", f"{theirs['rps']:,.0f}", "", ""),
        ("hello ratio comet/gunicorn", f"{ratio:.1f}x", f">= {TARGET_RATIO:g}x",
         verdict(ratio >= TARGET_RATIO)),
        ("hello mean latency, comet_server", f"{ours['latency_ms']:.2f} ms", "", ""),
        (f"RSS after warm-up ({WARMUP_PARKED} parked+answered)",
         f"{fan['rss_before_kib']:,} KiB", "", ""),
        (f"RSS with {parked:,} parked", f"{fan['rss_after_kib']:,} KiB", "", ""),
        ("RSS per parked request", f"{fan['kib_per_parked']:.2f} KiB",
         f"<= {TARGET_KIB_PER_PARKED:g} KiB",
         verdict(fan["kib_per_parked"] <= TARGET_KIB_PER_PARKED)),
        (f"RSS with {parked:,} re-parked, last round", f"{fan['rss_last_round_kib']:,} KiB",
         "", ""),
        ("RSS per parked, after fan-outs (high water)",
         f"{(fan['rss_last_round_kib'] - fan['rss_before_kib']) / parked:.2f} KiB", "", ""),
        (f"publish -> all {parked:,} answers read (median)", f"{med['all_ms']:.0f} ms",
         f"<= {TARGET_FANOUT_MS:g} ms", verdict(med["all_ms"] <= TARGET_FANOUT_MS)),
        ("per-waiter latency p50 (median round)", f"{med['p50_ms']:.0f} ms", "", ""),
        ("per-waiter latency p99 (median round)", f"{med['p99_ms']:.0f} ms", "", ""),
        ("first answer read after (median round)", f"{med['first_ms']:.0f} ms", "", ""),
    ]
    if len(fan["rounds"]) > 1:
        rows.append(("publish -> all answers, each round", f"{fan_all} ms", "", ""))
    for name, result in hello.items():
        if len(result["all_rps"]) > 1:
            runs = ", ".join(f"{r:,.0f}" for r in result["all_rps"])
            rows.append((f"hello req/s each run, {name}", runs, "best kept", ""))
        for error in result["errors"]:
            rows.append((f"wrk errors, {name}", error, "", ""))
    print_table(f"comet server benchmarks ({os.cpu_count()} CPUs, load {load:.1f} at start; "
                f"wrk -t1 -c50 -d{seconds:g}s; {parked:,} parked; "
                f"took {time.monotonic() - started:.0f} s)", rows)
    busy_note(load)
    save_results("bench_server", {"hello": hello, "parked": fan, "ratio": ratio,
                                  "quick": args.quick, "loadavg_at_start": load})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The chat through Django with PostgreSQL ~1 ms away (issue 15): ours vs gunicorn gthread.

Both servers run the chat (``chatsite.wsgi``) with the same number of threads against a
database of the bench's own on the shared PostgreSQL, reached through a TCP proxy that
delays each direction by ``--delay-ms`` (``bench/delay_proxy.py``, its own process): a
database on another machine, as in production, where a view spends most of its time
waiting for query round trips and threads overlap those waits.

a. page req/s: ``GET /rooms/bench/`` (the room page, anonymous), wrk -t1 -c32;
b. posts/s: ``POST /rooms/bench/messages`` as one guest session (its cookie and CSRF
   token; the chat's rate limits off), wrk -t1 -c32 with a Lua script.

Ours is ``manage.py runcomet --threads N``; gunicorn is ``gunicorn -k gthread --threads N
-w 1 chatsite.wsgi:application``. Rounds alternate the servers; each keeps its best run
(a noisy neighbour only ever makes a run slower). The database is dropped at the end.

Run from the repo root: ``.venv/bin/python bench/bench_chat_db.py [--seconds S]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from bench._common import (  # noqa: E402
    HOST,
    ONE_ADDRESS,
    PYTHON,
    ROOT,
    VENV_BIN,
    BenchError,
    ServerError,
    ServerProcess,
    busy_note,
    free_port,
    print_table,
    save_results,
    status,
    verdict,
    wrk,
)
from bench.bench_chat import ROOM, Client, setup_room  # noqa: E402
from tests.helpers.proc import (  # noqa: E402
    PRODUCTION_ENV,
    UNLIMITED_CHAT_ENV,
    manage,
    runcomet_argv,
)

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN = f"postgres://{PG_HOST}:{PG_PORT}/test"
CONNECTIONS = 32
SEED_MESSAGES = 60  # more than the room page shows, so every page renders the same


@contextmanager
def own_database() -> Iterator[str]:
    """A database of the bench's own on the shared PostgreSQL, dropped afterwards."""
    name = f"comet_chatbench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield name
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def delay_proxy(delay_ms: float) -> Iterator[int]:
    """``bench/delay_proxy.py`` in front of PostgreSQL; its port."""
    proc = subprocess.Popen([PYTHON, "-m", "bench.delay_proxy", "--upstream",
                             f"{PG_HOST}:{PG_PORT}", "--delay-ms", str(delay_ms)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise BenchError(f"the delay proxy printed {line!r}")
        yield int(line)
    finally:
        proc.terminate()
        proc.wait(10)


def round_trip_ms(url: str, samples: int = 200) -> float:
    """Median ``SELECT 1`` round trip through ``url`` (what every query pays)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[len(times) // 2]


def ours(env: Mapping[str, str | None], threads: int) -> ServerProcess:
    return ServerProcess(runcomet_argv("--no-access-log", "--threads", str(threads),
                                       *ONE_ADDRESS), name="runcomet", env=env)


def gunicorn(env: Mapping[str, str | None], threads: int) -> ServerProcess:
    port = free_port()
    return ServerProcess([str(VENV_BIN / "gunicorn"), "-w", "1", "-k", "gthread", "--threads",
                          str(threads), "-b", f"{HOST}:{port}", "--log-level", "warning",
                          "chatsite.wsgi:application"], name="gunicorn", env=env,
                         ready_fd=False, port=port, stats_path="")


def post_script(client: Client, workdir: Path) -> Path:
    """wrk's Lua script: every request a POST of a message, as the client's session."""
    headers = client.headers(with_form=True)
    headers.pop("Host")
    lines = ['wrk.method = "POST"', 'wrk.body = "text=hello+from+wrk&nick=bench"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    path = workdir / "post.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(server: ServerProcess, path: str, seconds: float, script: Path | None) -> dict:
    with server:
        url = f"http://{HOST}:{server.port}{path}"
        wrk(url, seconds=1, connections=CONNECTIONS, script=script)  # warm-up
        result = wrk(url, seconds=seconds, connections=CONNECTIONS, script=script)
        server.check_alive()
    if result["errors"]:
        raise BenchError(f"wrk against {server.name} {path}: {'; '.join(result['errors'])}")
    return result


def run(args: argparse.Namespace, workdir: Path) -> dict:
    with own_database() as dbname, delay_proxy(args.delay_ms) as proxy_port:
        base: dict[str, str | None] = {**PRODUCTION_ENV, **UNLIMITED_CHAT_ENV, "COMET_BROKER": None,
                "DJANGO_SETTINGS_MODULE": "chatsite.settings"}
        direct = f"postgres://{PG_HOST}:{PG_PORT}/{dbname}"
        through_proxy = f"postgres://{HOST}:{proxy_port}/{dbname}"
        env = {**base, "DATABASE_URL": through_proxy}
        status(f"migrating {dbname}")
        migrate_env = {**os.environ, **base, "DATABASE_URL": direct}
        manage("migrate", "--noinput", timeout=120,
               env={k: v for k, v in migrate_env.items() if v is not None})
        rtt_direct, rtt_proxy = round_trip_ms(direct), round_trip_ms(through_proxy)
        status(f"SELECT 1 round trip: {rtt_direct:.2f} ms direct, {rtt_proxy:.2f} ms "
               "through the proxy")

        client = Client(0)
        with ours(env, args.threads) as server:
            client.port = server.port
            setup_room(client, note="bench_chat_db.py")
            for i in range(SEED_MESSAGES):
                code, body = client.request("POST", f"/rooms/{ROOM}/messages",
                                            {"text": f"seed {i}", "nick": "bench"})
                if code != 201:
                    raise BenchError(f"seeding a message answered {code}: {body[:300]!r}")
        script = post_script(client, workdir)

        contenders: dict[str, Callable[[], ServerProcess]] = {
            f"ours runcomet --threads {args.threads}": lambda: ours(env, args.threads),
            f"gunicorn gthread --threads {args.threads}": lambda: gunicorn(env, args.threads),
        }
        phases = {"page": (f"/rooms/{ROOM}/", None),
                  "post": (f"/rooms/{ROOM}/messages", script)}
        runs: dict[str, dict[str, list[dict]]] = {
            phase: {name: [] for name in contenders} for phase in phases}
        for phase, (path, lua) in phases.items():
            for round_no in range(1, args.rounds + 1):
                for name, make in contenders.items():
                    status(f"{phase} {round_no}/{args.rounds}: {name}: wrk -t1 "
                           f"-c{CONNECTIONS} -d{args.seconds:g}s {path}")
                    runs[phase][name].append(measure(make(), path, args.seconds, lua))
    best = {phase: {name: max(results, key=lambda r: r["rps"])
                    | {"runs": [r["rps"] for r in results]}
                    for name, results in by_name.items()} for phase, by_name in runs.items()}
    return {"rtt_direct_ms": rtt_direct, "rtt_proxy_ms": rtt_proxy, "best": best}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=8, help="threads of both servers")
    parser.add_argument("--seconds", type=float, default=5.0, help="each wrk run")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating rounds per figure, best kept")
    parser.add_argument("--delay-ms", type=float, default=0.5,
                        help="one-way delay of the proxy to PostgreSQL (a round trip is two)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-chat-db-") as tmp:
        try:
            result = run(args, Path(tmp))
        except (BenchError, ServerError, OSError, psycopg.Error,
                subprocess.TimeoutExpired) as exc:
            print(f"bench_chat_db: FAILED: {exc}", file=sys.stderr)
            return 1
    rows = []
    ours_name = f"ours runcomet --threads {args.threads}"
    base_name = f"gunicorn gthread --threads {args.threads}"
    for phase, what in (("page", "room page GET"), ("post", "message POST")):
        by_name = result["best"][phase]
        base = by_name[base_name]["rps"]
        for name, run_ in by_name.items():
            rows.append((what, name, f"{run_['rps']:,.0f} req/s ({run_['latency_ms']:.1f} ms)",
                         f"{run_['rps'] / base:.2f}x gthread"))
        ratio = by_name[ours_name]["rps"] / base
        rows.append(("", "target >= 1.0x gthread", f"{ratio:.2f}x", verdict(ratio >= 1.0)))
    print_table(f"the chat on PostgreSQL {result['rtt_proxy_ms']:.2f} ms away (SELECT 1; "
                f"{result['rtt_direct_ms']:.2f} ms direct); wrk -t1 -c{CONNECTIONS} "
                f"-d{args.seconds:g}s, best of {args.rounds}; {os.cpu_count()} CPUs, load "
                f"{load:.1f} at start; took {time.monotonic() - started:.0f} s", rows)
    busy_note(load)
    path = save_results("chat_db", {**result, "argv": sys.argv[1:], "loadavg_at_start": load})
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the chat site on runcomet (issue 3 targets): N open room pages.

Parks N ``GET /rooms/<slug>/updates?after=<cursor>`` long-polls (anonymous, as pages
of visitors who have not picked a name, so polls write no presence rows), posts one
message through the HTTP API and times until every poll has its complete answer;
also the server RSS per parked long-poll.  Each run uses a fresh SQLite database in
a temporary directory, so the figures do not depend on what the dev database holds.

Run from the repo root: ``.venv/bin/python bench/bench_chat.py [--parked N] [--quick]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    HOST,
    ONE_ADDRESS,
    BenchError,
    LongPolls,
    ServerError,
    ServerProcess,
    busy_note,
    percentile,
    print_table,
    raise_fd_limit,
    save_results,
    status,
    verdict,
    wait_parked,
)
from tests.helpers.proc import (  # noqa: E402  (after sys.path)
    PRODUCTION_ENV,
    UNLIMITED_CHAT_ENV,
    manage,
    runcomet_argv,
)

TARGET_FANOUT_MS = 250.0
TARGET_KIB_PER_PARKED = 16.0
WARMUP_PARKED = 200
ROOM = "bench"
NICK = "bench"


class Client:
    """Cookies (CSRF, session) and plain requests to the site, one connection each."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            conn.request(method, path, body=urlencode(form) if form else None,
                         headers=self.headers(with_form=form is not None))
            resp = conn.getresponse()
            body = resp.read()
            for header in resp.headers.get_all("Set-Cookie") or ():
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            return resp.status, body
        finally:
            conn.close()

    def remember_cookies(self, head: bytes) -> None:
        """Keep the cookies set by a raw answer (the session, after the first post)."""
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "set-cookie":
                for key, morsel in SimpleCookie(value.strip()).items():
                    self.cookies[key] = morsel.value

    def headers(self, *, with_form: bool) -> dict[str, str]:
        headers = {"Host": f"{HOST}:{self.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if with_form:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
        return headers

    def raw_post(self, path: str, form: dict[str, str], *, keep_alive: bool = False) -> bytes:
        """The bytes of a POST, built ahead so the clock starts at the send itself."""
        body = urlencode(form)
        lines = [f"POST {path} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in self.headers(with_form=True).items()]
        lines += [f"Content-Length: {len(body.encode())}"]
        lines += ["", body] if keep_alive else ["Connection: close", "", body]
        return "\r\n".join(lines).encode()


def setup_room(client: Client, slug: str = ROOM, note: str = "bench_chat.py") -> int:
    """Create a room through the lobby form (CSRF); the room's latest message id."""
    if "csrftoken" not in client.cookies:
        code, _ = client.request("GET", "/")
        if code != 200 or "csrftoken" not in client.cookies:
            raise BenchError(f"GET / answered {code}, cookies {sorted(client.cookies)}")
    code, body = client.request("POST", "/", {"slug": slug, "title": slug.title(),
                                              "description": note})
    if code not in (200, 302):
        raise BenchError(f"creating room {slug!r} answered {code}: {body[:300]!r}")
    code, body = client.request("GET", f"/rooms/{slug}/messages")
    if code != 200:
        raise BenchError(f"GET /rooms/{slug}/messages answered {code}")
    return max([m["id"] for m in json.loads(body)["messages"]], default=0)


def post_timed(client: Client, polls: LongPolls, text: str) -> tuple[dict, list[float], float]:
    """Post one message; (message JSON, per-poll completion times, t0)."""
    raw = client.raw_post(f"/rooms/{ROOM}/messages", {"text": text, "nick": NICK})
    with socket.create_connection((HOST, client.port), timeout=30) as sock:
        t0 = time.perf_counter()
        sock.sendall(raw)
        done = polls.collect(timeout=60)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 201 "):
        raise BenchError(f"posting answered {answer[:300]!r}")
    client.remember_cookies(head)
    return json.loads(body), done, t0


def check_bodies(polls: LongPolls, message: dict) -> None:
    """Every poll got the posted message and the cursor moved to it."""
    for body in set(polls.bodies()):
        data = json.loads(body)
        if [m["id"] for m in data["messages"]] != [message["id"]] \
                or data["cursor"] != message["id"]:
            raise BenchError(f"a poll answered {body[:300]!r}, expected message {message['id']}")


def updates_request(port: int, after: int, slug: str = ROOM) -> bytes:
    return (f"GET /rooms/{slug}/updates?after={after} HTTP/1.1\r\n"
            f"Host: {HOST}:{port}\r\n\r\n").encode()


def run(parked: int, rounds: int, workdir: Path) -> dict:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
           **PRODUCTION_ENV, **UNLIMITED_CHAT_ENV,
           "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "chatsite.settings"),
           "PYTHONUNBUFFERED": "1"}
    env.pop("COMET_BROKER", None)  # one process: the in-process hub
    status(f"migrating a fresh database in {workdir}")
    manage("migrate", "--noinput", env=env)
    with ServerProcess(runcomet_argv("--no-access-log", *ONE_ADDRESS), name="runcomet",
                       env=env) as server:
        port = server.port
        client = Client(port)
        cursor = setup_room(client)

        # Warm-up: a park/post round, so Django's lazy setup (URL resolver, templates,
        # the first queries) is done before the baseline RSS.
        warm = LongPolls(port, updates_request(port, cursor))
        try:
            warm.open(WARMUP_PARKED, server=server)
            message, _, _ = post_timed(client, warm, "warm-up")
            check_bodies(warm, message)
        finally:
            warm.close()
        cursor = message["id"]
        wait_parked(server, 0, 5)
        time.sleep(0.5)
        rss_before = server.rss_kib()

        polls = LongPolls(port, updates_request(port, cursor))
        fanouts: list[dict] = []
        try:
            status(f"parking {parked} updates long-polls (after={cursor})")
            park_s = polls.open(parked, server=server)
            time.sleep(0.5)
            rss_after = rss_last = server.rss_kib()
            for round_no in range(1, rounds + 1):
                if round_no > 1:
                    polls.request = updates_request(port, cursor)
                    park_s = polls.repark(server=server)
                    time.sleep(0.5)
                    rss_last = server.rss_kib()
                early = polls.answered_early()
                if early:
                    raise BenchError(f"{early} long-polls were answered before the post "
                                     f"(parking took {park_s:.1f}s; poll timeout passed?)")
                status(f"post {round_no}/{rounds}: one message to {parked} long-polls")
                message, done, t0 = post_timed(client, polls, f"round {round_no}")
                check_bodies(polls, message)
                cursor = message["id"]
                latencies = sorted((t - t0) * 1000 for t in done)
                fanouts.append({"all_ms": latencies[-1], "p50_ms": percentile(latencies, 50),
                                "p99_ms": percentile(latencies, 99), "first_ms": latencies[0],
                                "park_s": round(park_s, 2)})
            server.check_alive()
        finally:
            polls.close()
    median = sorted(fanouts, key=lambda f: f["all_ms"])[len(fanouts) // 2]
    return {"parked": parked, "rss_before_kib": rss_before, "rss_after_kib": rss_after,
            "rss_last_round_kib": rss_last, "kib_per_parked": (rss_after - rss_before) / parked,
            "rounds": fanouts, "median": median}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parked", type=int, default=None,
                        help="parked long-polls (default 5000, 500 with --quick)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="posts timed, the median kept (default 3, 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 parked, 1 round")
    args = parser.parse_args()
    parked = args.parked or (500 if args.quick else 5000)
    rounds = args.rounds or (1 if args.quick else 3)
    limit = raise_fd_limit()
    if parked + WARMUP_PARKED + 200 > limit:
        parser.error(f"--parked {parked} needs more file descriptors than the limit ({limit})")
    started = time.monotonic()
    load = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    try:
        result = run(parked, rounds, workdir)
    except (BenchError, ServerError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"bench_chat: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    med = result["median"]
    rows = [
        ("RSS after warm-up", f"{result['rss_before_kib']:,} KiB", "", ""),
        (f"RSS with {parked:,} parked long-polls", f"{result['rss_after_kib']:,} KiB", "", ""),
        ("RSS per parked long-poll", f"{result['kib_per_parked']:.2f} KiB",
         f"<= {TARGET_KIB_PER_PARKED:g} KiB",
         verdict(result["kib_per_parked"] <= TARGET_KIB_PER_PARKED)),
        (f"RSS with {parked:,} re-parked, last round",
         f"{result['rss_last_round_kib']:,} KiB", "", ""),
        ("RSS per parked, after posts (high water)",
         f"{(result['rss_last_round_kib'] - result['rss_before_kib']) / parked:.2f} KiB", "", ""),
        (f"post -> all {parked:,} polls answered (median)", f"{med['all_ms']:.0f} ms",
         f"<= {TARGET_FANOUT_MS:g} ms", verdict(med["all_ms"] <= TARGET_FANOUT_MS)),
        ("per-poll latency p50 (median round)", f"{med['p50_ms']:.0f} ms", "", ""),
        ("per-poll latency p99 (median round)", f"{med['p99_ms']:.0f} ms", "", ""),
        ("first answer read after (median round)", f"{med['first_ms']:.0f} ms", "", ""),
        (f"time to park {parked:,} (first round)", f"{result['rounds'][0]['park_s']:.1f} s",
         "", ""),
    ]
    if len(result["rounds"]) > 1:
        each = ", ".join(f"{f['all_ms']:.0f}" for f in result["rounds"])
        rows.append(("post -> all answered, each round", f"{each} ms", "", ""))
    print_table(f"chat benchmarks (runcomet, SQLite, DEBUG off; {os.cpu_count()} CPUs, load "
                f"{load:.1f} at start; {parked:,} parked; took "
                f"{time.monotonic() - started:.0f} s)", rows)
    busy_note(load)
    save_results("bench_chat", {**result, "quick": args.quick, "loadavg_at_start": load})
    return 0


if __name__ == "__main__":
    sys.exit(main())

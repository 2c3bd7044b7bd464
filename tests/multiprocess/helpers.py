"""Run ``runcomet`` processes against the real Redis and PostgreSQL, and talk to them.

Everything here waits by polling a condition with a generous deadline; nothing sleeps
a fixed time to let another process "catch up".
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests

from tests.helpers.proc import (
    PRODUCTION_ENV,
    REDIS_URL,
    UNLIMITED_CHAT_ENV,
    ServerProcess,
    broker_env,
    child_env,
    children,
    runcomet_argv,
    wait_until,
)

PG_ADMIN_URL = os.environ.get("COMET_MP_PG_URL", "postgres://127.0.0.1:5432/test")
SETTINGS = "tests.multiprocess.server_settings"
POLL_TIMEOUT = 60.0  # the servers' CHAT_POLL_TIMEOUT (server_settings): longer than any wait
REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1",
               "--port", "6379", "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
               "--logfile", "/var/log/redis/ci.log"]


# -- services ------------------------------------------------------------------------------


def redis_alive() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1,
                                         socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def redis_stop() -> None:
    """Shut Redis down (no save) and wait until it no longer answers."""
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"],
                   capture_output=True, timeout=10, check=False)
    wait_until(lambda: not redis_alive(), 10, "Redis to go down")


def redis_start() -> None:
    """Start Redis (if it is not answering) and wait for PONG."""
    if not redis_alive():
        subprocess.run(REDIS_START, capture_output=True, timeout=10, check=False)
    wait_until(redis_alive, 15, "Redis to come back")


def pg_url(dbname: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


def pg_connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def create_room(db_url: str, slug: str) -> int:
    """A fresh room of our own, so tests sharing the database do not see each other."""
    with pg_connect(db_url) as conn:
        row = conn.execute(
            "INSERT INTO rooms_room (slug, title, description, created) "
            "VALUES (%s, %s, '', now()) RETURNING id", (slug, slug.title())).fetchone()
    assert row is not None
    return int(row[0])


def insert_message(db_url: str, room_id: int, text: str, author: str = "outside") -> int:
    """Store a message behind the servers' back (as another program would)."""
    with pg_connect(db_url) as conn:
        row = conn.execute(
            "INSERT INTO rooms_message (room_id, author, text, created) "
            "VALUES (%s, %s, %s, now()) RETURNING id", (room_id, author, text)).fetchone()
    assert row is not None
    return int(row[0])


@contextlib.contextmanager
def slow_commits(db_url: str, room_id: int, max_delay: float = 0.03) -> Iterator[None]:
    """Widen the gap between a message getting its id and its commit, for one room.

    An AFTER INSERT trigger sleeps a random moment: the sequence value is taken, the
    row is not yet visible.  Without the room lock of services.post_message, commits
    then land out of id order often enough for a cursor to jump over a message.
    """
    with pg_connect(db_url) as conn:
        conn.execute(f"""
            CREATE OR REPLACE FUNCTION mp_slow_{room_id}() RETURNS trigger AS $$
            BEGIN PERFORM pg_sleep(random() * {max_delay}); RETURN NEW; END $$
            LANGUAGE plpgsql""")
        conn.execute(f"""
            CREATE TRIGGER mp_slow_{room_id} AFTER INSERT ON rooms_message FOR EACH ROW
            WHEN (NEW.room_id = {room_id}) EXECUTE FUNCTION mp_slow_{room_id}()""")
    try:
        yield
    finally:
        with pg_connect(db_url) as conn:
            conn.execute(f"DROP TRIGGER IF EXISTS mp_slow_{room_id} ON rooms_message")
            conn.execute(f"DROP FUNCTION IF EXISTS mp_slow_{room_id}()")


def db_message_ids(db_url: str, room_id: int) -> list[int]:
    with pg_connect(db_url) as conn:
        rows = conn.execute("SELECT id FROM rooms_message WHERE room_id = %s ORDER BY id",
                            (room_id,)).fetchall()
    return [int(r[0]) for r in rows]


def server_env(db_url: str, broker: str | None = REDIS_URL) -> dict[str, str]:
    """The environment of the servers and commands of one database."""
    return child_env(PRODUCTION_ENV, UNLIMITED_CHAT_ENV, broker_env(broker or None), {
        "DJANGO_SETTINGS_MODULE": SETTINGS, "DATABASE_URL": db_url,
        "COMET_MP_POLL_TIMEOUT": str(POLL_TIMEOUT)})


# -- server processes ----------------------------------------------------------------------


def _server_side_inodes(port: int) -> dict[int, int]:
    """Established server-side sockets on ``port``: client port -> socket inode."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] != "01" or int(parts[1].rsplit(":", 1)[1], 16) != port:
                continue
            found[int(parts[2].rsplit(":", 1)[1], 16)] = int(parts[9])
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def owner_of(port: int, client_port: int, pids: Iterable[int]) -> int | None:
    """Which of ``pids`` holds the server side of our connection from ``client_port``."""
    inode = _server_side_inodes(port).get(client_port)
    if inode is None:
        return None
    for pid in pids:
        if inode in _socket_inodes(pid):
            return pid
    return None


def pinned_stats(conn: http.client.HTTPConnection) -> dict[str, Any]:
    """Stats asked on a keep-alive connection, so of the worker that holds it."""
    conn.request("GET", "/_comet/stats")
    return json.loads(conn.getresponse().read())


class Server(ServerProcess):
    """One ``manage.py runcomet`` process (a single server or a pre-fork master), ready
    once every worker runs and has subscribed to Redis."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str, workers: int = 1) -> None:
        super().__init__(runcomet_argv("--no-access-log", "--workers", str(workers)), log_dir,
                         name=name, env=env, start_timeout=60, stop_timeout=20)
        self.workers = workers

    def ready_conditions(self, timeout: float) -> None:
        if self.workers > 1:
            wait_until(lambda: len(self.worker_pids()) == self.workers, timeout,
                       f"{self.name}'s {self.workers} workers")
        wait_until(self.subscribed, timeout, f"{self.name}'s Redis subscriptions")

    def log(self) -> str:
        return self.stdout() + self.stderr()[-6000:]

    def subscriptions(self) -> int:
        """How many times this server's processes subscribed to Redis (from its log)."""
        return self.stderr().count("subscribed to Redis")

    def subscribed(self) -> bool:
        """Every process has logged its PSUBSCRIBE (before that, publishes miss it)."""
        return self.subscriptions() >= self.workers

    def worker_pids(self) -> set[int]:
        return children(self.pid) if self.workers > 1 else {self.pid}

    def pin_workers(self, attempts: int = 400) -> dict[int, http.client.HTTPConnection]:
        """A keep-alive connection to every worker (the caller closes them).

        A connection stays with the worker that accepted it, and /proc tells which one
        that is; so open connections until every worker holds one.  Which worker
        accepts is the kernel's race between them, and on a loaded machine one may win
        dozens of times in a row: hence the many attempts (each costs ~1 ms).
        """
        pids = self.worker_pids()
        pinned: dict[int, http.client.HTTPConnection] = {}
        try:
            for _ in range(attempts):
                if set(pinned) >= pids:
                    break
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/_comet/stats")
                conn.getresponse().read()
                assert conn.sock is not None
                pid = owner_of(self.port, conn.sock.getsockname()[1], pids)
                if pid is not None and pid not in pinned:
                    pinned[pid] = conn
                else:
                    conn.close()
            assert set(pinned) >= pids, f"could not reach every worker of {pids}: {set(pinned)}"
        except BaseException:
            for conn in pinned.values():
                conn.close()
            raise
        return pinned

    def stats_by_worker(self) -> dict[int, dict[str, Any]]:
        """Stats of every worker, each asked on a connection pinned to it."""
        pinned = self.pin_workers()
        try:
            return {pid: pinned_stats(conn) for pid, conn in pinned.items()}
        finally:
            for conn in pinned.values():
                conn.close()

    def listening_fd_flags(self) -> Callable[[], int]:
        """A reader of the listening socket's file status flags, as the master sees them.

        The master and every worker share one open file description, so O_NONBLOCK
        set or cleared by any of them is what all of them get.
        """
        inode = None
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == self.port:
                    inode = int(parts[9])
        assert inode is not None, "no listening socket"
        fd = next(f.name for f in Path(f"/proc/{self.proc.pid}/fd").iterdir()
                  if os.readlink(f) == f"socket:[{inode}]")
        path = f"/proc/{self.proc.pid}/fdinfo/{fd}"

        def read() -> int:
            with open(path) as info:
                for line in info:
                    if line.startswith("flags:"):
                        return int(line.split()[1], 8)
            raise AssertionError("no flags in fdinfo")

        return read

    def established(self) -> int:
        """Client connections the kernel holds for this port (accepted or still queued)."""
        return len(_server_side_inodes(self.port))

    def parked(self) -> int:
        """Parked long-polls over all of this server's processes."""
        if self.workers == 1:
            return int(self.stats()["parked"])
        return sum(int(s["parked"]) for s in self.stats_by_worker().values())

    def wait_parked(self, count: int, timeout: float = 20) -> None:
        seen: list[int] = []

        def check() -> bool:
            seen[:] = [self.parked()]
            return seen[0] == count

        try:
            wait_until(check, timeout, f"{count} parked polls on {self.name}", interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last count {seen}") from None


# -- chat clients --------------------------------------------------------------------------


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never through a proxy: these are loopback servers
    return s


class Poster:
    """A visitor who posts: holds the CSRF cookie the room page hands out."""

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.session = session()

    def post(self, server: Server, slug: str, text: str) -> dict[str, Any]:
        if "csrftoken" not in self.session.cookies:
            page = self.session.get(server.url(f"/rooms/{slug}/"), timeout=30)
            assert page.status_code == 200, page.text[:500]
        referer = server.url(f"/rooms/{slug}/")
        resp = self.session.post(server.url(f"/rooms/{slug}/messages"),
                                 data={"text": text, "nick": self.nick}, timeout=30,
                                 headers={"X-CSRFToken": self.session.cookies["csrftoken"],
                                          "Referer": referer})
        assert resp.status_code == 201, f"{resp.status_code} {resp.text[:500]}"
        return resp.json()


def poll_once(server: Server, slug: str, after: int,
              timeout: float = POLL_TIMEOUT + 10) -> tuple[dict[str, Any], float]:
    """One updates long-poll (own connection); returns the answer and when it came."""
    resp = session().get(server.url(f"/rooms/{slug}/updates"), params={"after": after},
                         timeout=timeout)
    assert resp.status_code == 200, f"{resp.status_code} {resp.text[:500]}"
    return resp.json(), time.monotonic()


class Follower(threading.Thread):
    """A page following a room with the cursor protocol until it holds ``want`` messages.

    On a dropped connection (a killed worker, a stopping server) it retries from its
    cursor, as the chat's JavaScript does; every answer is recorded for the checks.
    """

    def __init__(self, servers: list[Server], slug: str, after: int, want: int,
                 deadline: float) -> None:
        super().__init__(daemon=True)
        self.servers = servers
        self.slug = slug
        self.cursor = after
        self.want = want
        self.deadline = deadline
        self.received: list[dict[str, Any]] = []
        self.answers = 0
        self.errors: list[str] = []
        self.failure: str | None = None
        self._session = session()

    def run(self) -> None:
        turn = 0
        while len(self.received) < self.want:
            if time.monotonic() > self.deadline:
                self.failure = f"deadline passed with {len(self.received)}/{self.want}"
                return
            server = self.servers[turn % len(self.servers)]
            try:
                resp = self._session.get(server.url(f"/rooms/{self.slug}/updates"),
                                         params={"after": self.cursor},
                                         timeout=POLL_TIMEOUT + 10)
            except requests.RequestException as exc:
                self.errors.append(repr(exc))
                self._session = session()
                turn += 1
                time.sleep(0.05)  # a client's reconnect pause, not a synchronisation
                continue
            if resp.status_code != 200:
                self.failure = f"HTTP {resp.status_code}: {resp.text[:300]}"
                return
            data = resp.json()
            self.answers += 1
            self.received.extend(data["messages"])
            if data["cursor"] < self.cursor:
                self.failure = f"cursor went back from {self.cursor} to {data['cursor']}"
                return
            self.cursor = data["cursor"]

    def ids(self) -> list[int]:
        return [m["id"] for m in self.received]


def start_followers(count: int, servers: list[Server], slug: str, after: int, want: int,
                    timeout: float) -> list[Follower]:
    deadline = time.monotonic() + timeout
    followers = [Follower(servers[i % len(servers):] + servers[:i % len(servers)], slug,
                          after, want, deadline) for i in range(count)]
    for follower in followers:
        follower.start()
    return followers


def join_followers(followers: list[Follower], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for follower in followers:
        follower.join(max(0.0, deadline - time.monotonic()))
    stuck = [f for f in followers if f.is_alive()]
    assert not stuck, f"{len(stuck)} followers still waiting: " + \
        ", ".join(f"{len(f.received)}/{f.want} at cursor {f.cursor}" for f in stuck)
    failed = [f.failure for f in followers if f.failure]
    assert not failed, failed


def assert_exactly_once_in_order(followers: list[Follower], expected: list[int]) -> None:
    """Every follower got exactly ``expected`` (ids), once each, in id order."""
    for i, follower in enumerate(followers):
        got = follower.ids()
        if got == expected:
            continue
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        twice = sorted({x for x in got if got.count(x) > 1})
        unordered = [(a, b) for a, b in zip(got, got[1:], strict=False) if a >= b]
        raise AssertionError(
            f"follower {i} got {len(got)} messages, expected {len(expected)}: "
            f"missing {missing}, unexpected {extra}, duplicated {twice}, "
            f"out of order {unordered[:5]} (connection errors: {follower.errors[:2]})")

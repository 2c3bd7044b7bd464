"""Fixtures of the scale-out tests: a fresh PostgreSQL database, Redis, runcomet processes.

The services must be up (``make services``); these tests fail rather than skip without
them, so CI cannot pass with them silently skipped.  Set COMET_MP_ALLOW_SKIP=1 to skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.helpers.proc import manage
from tests.multiprocess import helpers


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "multiprocess: runs runcomet processes against the real Redis and PostgreSQL")


def _unavailable(what: str) -> None:
    message = f"{what} is not reachable; start it with `make services`"
    if os.environ.get("COMET_MP_ALLOW_SKIP") == "1":
        pytest.skip(message)
    pytest.fail(message)


@pytest.fixture(scope="session")
def mp_database() -> Iterator[str]:
    """A database of our own for the session, migrated like a deployment would be."""
    try:
        admin = helpers.pg_connect(helpers.PG_ADMIN_URL)
    except psycopg.OperationalError:
        _unavailable(f"PostgreSQL ({helpers.PG_ADMIN_URL})")
    if not helpers.redis_alive():
        helpers.redis_start()  # a previous run may have left it stopped
        if not helpers.redis_alive():
            _unavailable(f"Redis ({helpers.REDIS_URL})")
    name = f"comet_mp_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = helpers.pg_url(name)
    try:
        manage("migrate", "--noinput", env=helpers.server_env(url))
        yield url
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def room(mp_database: str) -> tuple[str, int]:
    """A room no other test posts to: (slug, id)."""
    slug = f"mp-{uuid.uuid4().hex[:8]}"
    return slug, helpers.create_room(mp_database, slug)


@pytest.fixture
def keep_redis_running() -> Iterator[None]:
    """Whatever a test does to Redis, leave it running for everyone else."""
    try:
        yield
    finally:
        helpers.redis_start()


StartChatServer = Callable[..., helpers.Server]


@pytest.fixture
def start_chat_server(mp_database: str, tmp_path: Path) -> Iterator[StartChatServer]:
    """Start runcomet processes on the shared database and Redis; SIGTERM them at the end
    and check they stop cleanly (exit 0), as a deployment's process manager expects."""
    started: list[helpers.Server] = []

    def start(workers: int = 1) -> helpers.Server:
        server = helpers.Server(helpers.server_env(mp_database), tmp_path,
                                f"server{len(started)}", workers=workers)
        started.append(server)
        return server.start()

    yield start
    codes = {}
    for server in started:
        try:
            codes[server.name] = server.terminate()
        finally:
            server.kill()
    bad = {name: code for name, code in codes.items() if code != 0}
    assert not bad, f"servers did not exit 0 on SIGTERM: {bad}"

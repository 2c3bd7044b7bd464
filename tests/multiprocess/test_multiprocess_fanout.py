"""A post or publish anywhere wakes long-polls parked in every other process."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, wait

import pytest

from tests.helpers.proc import PYTHON, ROOT, manage
from tests.multiprocess import helpers
from tests.multiprocess.helpers import POLL_TIMEOUT, Poster, poll_once

pytestmark = pytest.mark.multiprocess

WAKE_DEADLINE = 20.0  # far below the servers' poll timeout: an answer in time is a wake-up


def _park(pool: ThreadPoolExecutor, server: helpers.Server, slug: str, after: int,
          count: int) -> list:
    return [pool.submit(poll_once, server, slug, after) for _ in range(count)]


def _answers(futures: list, since: float) -> list[dict]:
    done, pending = wait(futures, timeout=WAKE_DEADLINE)
    assert not pending, f"{len(pending)} of {len(futures)} long-polls were not woken"
    answers = []
    for future in futures:
        data, at = future.result()
        assert at - since < POLL_TIMEOUT / 2, "answered by the timeout, not by a wake-up"
        answers.append(data)
    return answers


def test_post_on_one_process_wakes_polls_parked_on_another(start_chat_server, room) -> None:
    """Two runcomet processes are two machines: only Redis connects them."""
    slug, _ = room
    a, b = start_chat_server(), start_chat_server()
    with ThreadPoolExecutor(12) as pool:
        futures = _park(pool, b, slug, 0, 12)
        b.wait_parked(12)
        assert a.stats()["parked"] == 0
        since = time.monotonic()
        posted = Poster("alice").post(a, slug, "hello from A")
        answers = _answers(futures, since)
    for data in answers:
        assert [m["id"] for m in data["messages"]] == [posted["id"]]
        assert data["messages"][0]["text"] == "hello from A"
        assert data["cursor"] == posted["id"]
    assert b.stats()["parked"] == 0


def test_workers_share_one_port_and_all_wake_on_one_post(start_chat_server, room) -> None:
    """With --workers 2 the polls spread over both workers; a post handled by either
    worker must wake the other worker's polls too (through Redis)."""
    slug, _ = room
    server = start_chat_server(workers=2)
    with ThreadPoolExecutor(120) as pool:
        futures: list = []
        per_worker: dict[int, int] = {}
        while len(futures) < 120:  # the kernel may favour one worker: add until both hold some
            futures += _park(pool, server, slug, 0, 40)

            def settled(expected: int = len(futures)) -> bool:
                per_worker.clear()
                per_worker.update({pid: s["parked"]
                                   for pid, s in server.stats_by_worker().items()})
                return sum(per_worker.values()) == expected

            helpers.wait_until(settled, 20, f"{len(futures)} parked polls ({per_worker})",
                               interval=0.1)
            if min(per_worker.values()) > 0:
                break
        assert len(per_worker) == 2 and min(per_worker.values()) > 0, per_worker
        since = time.monotonic()
        posted = Poster("bob").post(server, slug, "one post, two workers")
        answers = _answers(futures, since)
    assert all([m["id"] for m in d["messages"]] == [posted["id"]] for d in answers)


def test_publish_from_plain_python_and_post_message_command_wake_polls(
        start_chat_server, room, mp_database) -> None:
    """Code outside runcomet publishes too: a bare Python process (no Django) and the
    post_message management command."""
    slug, room_id = room
    server = start_chat_server(workers=2)
    env = helpers.server_env(mp_database)
    plain_env = {k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"}

    # 1. a message stored by another program, announced from plain Python
    with ThreadPoolExecutor(10) as pool:
        futures = _park(pool, server, slug, 0, 10)
        server.wait_parked(10)
        stored = helpers.insert_message(mp_database, room_id, "stored elsewhere")
        code = ("from comet_server import publish; "
                f"publish({'room:' + slug!r}, {{'type': 'message'}}, cursor={stored})")
        since = time.monotonic()
        done = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=plain_env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        answers = _answers(futures, since)
    assert all([m["id"] for m in d["messages"]] == [stored] for d in answers)

    # 2. manage.py post_message: stores and publishes after commit
    with ThreadPoolExecutor(10) as pool:
        futures = _park(pool, server, slug, stored, 10)
        server.wait_parked(10)
        since = time.monotonic()
        done = manage("post_message", slug, "from the command line", "--nick", "ops", env=env)
        assert "COMET_BROKER is not set" not in done.stderr
        answers = _answers(futures, since)
    ids = helpers.db_message_ids(mp_database, room_id)
    assert len(ids) == 2 and ids[0] == stored
    for data in answers:
        assert [m["id"] for m in data["messages"]] == [ids[1]]
        assert data["messages"][0]["author"] == "ops"
        assert data["messages"][0]["text"] == "from the command line"


def test_workers_without_a_broker_refuse_to_start(mp_database) -> None:
    """Workers without a broker would silently miss each other's publishes."""
    env = helpers.server_env(mp_database, broker=None)
    assert "COMET_BROKER" not in env
    done = subprocess.run([PYTHON, "manage.py", "runcomet", "127.0.0.1:0",
                           "--noreload", "--workers", "2"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "COMET_BROKER" in done.stderr and "--workers" in done.stderr, done.stderr
    assert "Starting comet server" not in done.stdout


def test_comet_publish_command_reaches_every_process(start_chat_server, room, mp_database) -> None:
    """The operator's raw publish (a signal, no cursor) wakes polls in two processes."""
    slug, _ = room
    a, b = start_chat_server(), start_chat_server()
    env = helpers.server_env(mp_database)
    with ThreadPoolExecutor(8) as pool:
        futures = _park(pool, a, slug, 0, 4) + _park(pool, b, slug, 0, 4)
        a.wait_parked(4)
        b.wait_parked(4)
        since = time.monotonic()
        manage("comet_publish", f"room:{slug}", json.dumps({"type": "typing", "nick": "op"}),
               env=env)
        answers = _answers(futures, since)
    for data in answers:
        assert data["messages"] == [] and data["cursor"] == 0
        assert data["typing"] == ["op"]

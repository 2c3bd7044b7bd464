"""Views on the thread pool: a slow view never stalls the push (issue 15).

Black-box against ``runcomet`` serving tests/serverapp: views sleeping or spinning on
pool threads while parked long-polls, event streams and health checks are served;
the bounded queue's 503; the slow-request log; a drain with views running; database
connections per thread under ``CONN_MAX_AGE`` (PostgreSQL's ``pg_stat_activity``).
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from comet_server.loop import EventLoop
from comet_server.push.hub import Hub
from tests.helpers.http import build_request, connect, read_chunk, read_head, read_response
from tests.helpers.proc import SERVER_ENV, launch, runcomet_argv, wait_until

PG_ADMIN = "postgres://127.0.0.1:5432/test"


def _start(tmp_path, *options: str, env: dict | None = None, name: str = "threads"):
    return launch(runcomet_argv(*options), tmp_path, name, env={**SERVER_ENV, **(env or {})})


def _send(port: int, target: str) -> socket.socket:
    sock = connect(port, timeout=30)
    sock.sendall(build_request("GET", target))
    return sock


def _answer(sock: socket.socket):
    with sock, sock.makefile("rb") as reader:
        return read_response(reader)


def _busy(server, threads_busy: int, **more: int) -> dict:
    return server.wait_stats(lambda s: s["threads_busy"] >= threads_busy
                             and all(s[k] >= v for k, v in more.items()), timeout=10)


def test_slow_views_do_not_delay_a_publish_nor_the_health_check(tmp_path) -> None:
    """Four views sleep 2 s on threads: a publish reaches 200 parked polls and 5 event
    streams at once, /_comet/live answers at once (before the pool, all of it waited
    for the views, one after the other)."""
    server = _start(tmp_path)
    channel = f"slow-{uuid.uuid4().hex[:8]}"
    polls = [_send(server.port, f"/wait/{channel}?after=0&timeout=30") for _ in range(200)]
    streams = []
    for _ in range(5):
        sock = _send(server.port, f"/sse/{channel}?lifetime=60")
        reader = sock.makefile("rb")
        head = read_head(reader)
        assert head.status == 200
        read_chunk(reader, head)  # retry: and the opening
        streams.append((sock, reader, head))
    server.wait_stats(lambda s: s["parked"] >= 200 and s["event_streams"] >= 5)
    slow = [_send(server.port, "/block?s=2") for _ in range(4)]
    _busy(server, 4)
    started = time.monotonic()
    live = requests.get(server.url("/_comet/live"), timeout=5)
    live_took = time.monotonic() - started
    assert live.status_code == 200 and live_took < 0.3, live_took
    started = time.monotonic()
    requests.post(server.url(f"/pub/{channel}?cursor=1"), data=json.dumps("hi"), timeout=5)
    for sock in polls:
        answer = _answer(sock)
        assert answer.status == 200 and json.loads(answer.body)["events"][0]["payload"] == "hi"
    for sock, reader, head in streams:
        assert b'"hi"' in (read_chunk(reader, head) or b"")
        sock.close()
    took = time.monotonic() - started
    assert took < 1.0, f"the publish took {took:.2f}s with slow views running"
    assert all(_answer(sock).body == b"unblocked" for sock in slow)


def test_past_the_queue_bound_new_requests_get_503_with_retry_after(tmp_path) -> None:
    server = _start(tmp_path, "--threads", "1", "--max-queued", "1")
    running = _send(server.port, "/block?s=3")
    _busy(server, 1)
    queued = _send(server.port, "/block?s=0")
    server.wait_stats(lambda s: s["queued"] >= 1)
    refused = requests.get(server.url("/hello"), timeout=5)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert requests.get(server.url("/_comet/live"), timeout=1).status_code == 200
    assert _answer(running).body == b"unblocked" and _answer(queued).body == b"unblocked"
    stats = server.stats()
    assert stats["queue_refused_total"] == 1 and stats["caps"]["max_queued"] == 1
    metrics = requests.get(server.url("/metrics"), timeout=5).text
    assert "comet_queued_seconds_count" in metrics and "comet_threads_busy" in metrics


def test_a_long_view_is_logged_once_with_its_stack(tmp_path) -> None:
    server = _start(tmp_path, "--slow-request", "0.5")
    sock = _send(server.port, "/block?s=1.5")
    wait_until(lambda: "slow request: GET /block?s=1.5" in server.stderr(), 10,
               "the slow-request log line")
    assert _answer(sock).body == b"unblocked"
    log = server.stderr()
    assert log.count("slow request: GET /block") == 1
    assert "in block" in log and "time.sleep" in log  # the view's own frame


def test_a_drain_waits_for_running_views_and_answers_the_parked(tmp_path) -> None:
    server = _start(tmp_path)
    channel = f"drain-{uuid.uuid4().hex[:8]}"
    polls = [_send(server.port, f"/wait/{channel}?after=0&timeout=30") for _ in range(5)]
    stream = _send(server.port, f"/sse/{channel}?lifetime=60")
    server.wait_stats(lambda s: s["parked"] >= 5 and s["event_streams"] >= 1)
    slow = [_send(server.port, "/block?s=1.5") for _ in range(2)]
    _busy(server, 2)
    server.proc.send_signal(signal.SIGTERM)
    for sock in polls:
        answer = _answer(sock)
        assert answer.status == 200 and json.loads(answer.body)["events"] == []
    with stream, stream.makefile("rb") as reader:
        head = read_head(reader)
        while read_chunk(reader, head) is not None:  # ends with the last chunk
            pass
    assert all(_answer(sock).body == b"unblocked" for sock in slow)
    assert server.proc.wait(10) == 0, server.logs()


def test_publish_from_many_threads_keeps_each_channels_order() -> None:
    """Eight threads publish at once, each on a channel of its own and on a shared one;
    a stream on the loop gets every channel's events in the order published."""
    loop = EventLoop()
    hub = Hub(history=16)
    hub.set_scheduler(loop.call_soon, lambda fn: loop.call_later(0, fn))
    got: dict[str, list] = {}
    count, threads = 300, 8
    channels = tuple(f"own{i}" for i in range(threads)) + ("shared",)

    def deliver(delivery) -> None:
        for event in delivery.events:
            got.setdefault(event.channel, []).append(event.payload)
        if sum(map(len, got.values())) == 2 * count * threads:
            loop.stop()

    hub.follow(channels, None, deliver)
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    wait_until(lambda: loop._thread_id is not None, 5, "the loop to run")

    def publisher(i: int) -> None:
        for n in range(count):
            hub.publish(f"own{i}", n)
            hub.publish("shared", [i, n])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(publisher, range(threads)))
    runner.join(10)
    assert not runner.is_alive(), "not every event arrived"
    loop.close()
    for i in range(threads):
        assert got[f"own{i}"] == list(range(count))
        assert [n for who, n in got["shared"] if who == i] == list(range(count))


# -- database connections per thread -------------------------------------------------------


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A database of our own on the shared PostgreSQL, dropped afterwards."""
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {PG_ADMIN}: {exc}")
    name = f"comet_pool_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield name
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _backends(dbname: str, app: str) -> set[int]:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND "
                            "application_name = %s", (dbname, app)).fetchall()
    return {row[0] for row in rows}


def _db_round(server, concurrency: int, rounds: int) -> list[int]:
    pids: list[int] = []
    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(rounds):
            answers = pool.map(lambda _: requests.get(server.url("/db-backend?s=0.05"),
                                                      timeout=10), range(concurrency))
            for answer in answers:
                assert answer.status_code == 200, answer.text
                pids.append(answer.json()["pid"])
    return pids


@pytest.mark.parametrize("max_age", [0, 600])
def test_database_connections_follow_conn_max_age_per_thread(tmp_path, pg_database,
                                                            max_age) -> None:
    threads = 4
    app = f"pool-test-{uuid.uuid4().hex[:6]}"
    server = _start(tmp_path, "--threads", str(threads), name=f"db{max_age}", env={
        "SERVERAPP_PG_NAME": pg_database, "SERVERAPP_CONN_MAX_AGE": str(max_age),
        "SERVERAPP_PG_APP": app})
    pids = _db_round(server, concurrency=8, rounds=4)  # more clients than threads
    if max_age == 0:
        # Each request its own connection, closed when it ends (request_finished on
        # the thread that ran the view).
        assert len(set(pids)) == len(pids)
        wait_until(lambda: not _backends(pg_database, app), 5, "every connection closed")
    else:
        # One connection per thread, kept and reused.
        assert len(set(pids)) <= threads, pids
        open_now = _backends(pg_database, app)
        assert set(pids) == open_now and len(open_now) <= threads
    server.terminate()

"""/metrics of a pre-fork server: one scrape, whichever worker answers it, holds every
worker's series (a ``worker`` label) and totals equal to the load applied; a worker
that dies leaves the scrape."""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections import Counter

import requests

from tests.helpers.http import build_request, connect, read_response
from tests.helpers.proc import SERVER_ENV, broker_env, children, launch, runcomet_argv, wait_until
from tests.helpers.scrape import Scrape, wait_scrape
from tests.multiprocess.helpers import REDIS_URL, owner_of

PER_WORKER = 3


def test_one_scrape_totals_every_worker(tmp_path, mp_database) -> None:
    env = {**SERVER_ENV, **broker_env(REDIS_URL)}
    server = launch(runcomet_argv("--workers", "2", "--no-access-log"), tmp_path, "pre",
                    env=env, start_timeout=60)
    parked: list[tuple[socket.socket, object]] = []
    try:
        wait_until(lambda: server.stderr().count("subscribed to Redis") >= 2, 30,
                   "both workers subscribed")
        pids = children(server.pid)
        assert len(pids) == 2
        before = wait_scrape(server.port, lambda s: s.workers() == {str(p) for p in pids},
                             message="both workers in one scrape")
        channel, idle = f"w-{uuid.uuid4().hex[:6]}", f"idle-{uuid.uuid4().hex[:6]}"
        owners: Counter[int] = Counter()
        for _ in range(400):  # which worker accepts is the kernel's race
            if all(owners[p] >= PER_WORKER for p in pids):
                break
            sock = connect(server.port)
            sock.sendall(build_request("GET", f"/wait/{channel}?timeout=60"))
            owner = wait_until(lambda s=sock: owner_of(server.port, s.getsockname()[1], pids),
                               10, "the connection accepted")
            if owners[owner] >= PER_WORKER:
                sock.close()  # one too many on that worker: it answers nobody
                continue
            owners[owner] += 1
            parked.append((sock, sock.makefile("rb")))
        n = len(parked)
        assert n == 2 * PER_WORKER, owners

        def parked_per_worker(s: Scrape) -> bool:
            return s.per_worker("comet_parked") == {str(p): PER_WORKER for p in pids}

        wait_scrape(server.port, parked_per_worker, message="3 parked on each worker")
        m = 4
        for i in range(m - 1):
            requests.post(server.url(f"/pub/{idle}?cursor={i + 1}"), json=i, timeout=10)
        requests.post(server.url(f"/pub/{channel}?cursor=9"), json="go", timeout=10)
        for _, reader in parked:
            assert read_response(reader).json()["events"][0]["payload"] == "go"

        def delta(s: Scrape, name: str) -> float:
            return s.value(name) - before.value(name)

        def settled(s: Scrape) -> bool:
            return (s.value("comet_parked") == 0 and delta(s, "comet_deliveries_total") == n
                    and delta(s, "comet_published_total") == m
                    and delta(s, "comet_fanout_seconds_count") == 2)

        after = wait_scrape(server.port, settled, message="totals of the load")
        assert after.value("comet_workers") == 2
        assert after.per_worker("comet_parked_seconds_count").keys() == {str(p) for p in pids}
        for pid in pids:  # each worker woke its own three
            assert after.per_worker("comet_deliveries_total")[str(pid)] - \
                before.per_worker("comet_deliveries_total")[str(pid)] == PER_WORKER

        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        wait_scrape(server.port, lambda s: str(victim) not in s.workers()
                    and len(s.workers()) == 2, 30, "the dead worker gone, its heir in")
    finally:
        for sock, reader in parked:
            reader.close()
            sock.close()
        server.terminate()

"""The pre-fork master supervises as gunicorn's arbiter does: it wakes on signals at
once, kills and replaces a worker whose event loop stopped beating, and its workers
do not outlive it.

These run ``manage.py runcomet --workers 2`` on the test project of ``tests/serverapp``
(its ``/block?s=N`` view blocks a worker's loop) with the real Redis as the broker.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from comet_server.serving.heartbeat import Heartbeat
from tests.helpers.proc import PRODUCTION_ENV
from tests.multiprocess import helpers
from tests.multiprocess.helpers import wait_until

pytestmark = pytest.mark.multiprocess

WORKER_TIMEOUT = 2.0
SLACK = 1.5  # the most a hung worker may outlive WORKER_TIMEOUT (a beat is timeout/4)


@pytest.fixture
def start_workers(tmp_path: Path) -> Iterator[Callable[..., helpers.Server]]:
    """Start ``runcomet --workers N`` on tests.serverapp with Redis as the broker."""
    if not helpers.redis_alive():
        helpers.redis_start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    env.update(PRODUCTION_ENV)
    env.update(PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="tests.serverapp.settings",
               COMET_BROKER=helpers.REDIS_URL, COMET_WORKER_TIMEOUT=str(WORKER_TIMEOUT))
    started: list[helpers.Server] = []

    def start(workers: int = 2, **extra: str) -> helpers.Server:
        server = helpers.Server({**env, **extra}, tmp_path, f"sup{len(started)}",
                                workers=workers)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        pids = server.worker_pids() if server.proc.poll() is None else set()
        try:
            server.terminate()
        finally:
            server.kill()
            for pid in pids:  # whatever a failed test left behind
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its (new) parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def _hello(conn: http.client.HTTPConnection) -> bytes:
    conn.request("GET", "/hello")
    resp = conn.getresponse()
    assert resp.status == 200
    return resp.read()


def test_a_hung_worker_is_killed_and_replaced(start_workers) -> None:
    """A view blocks one worker's loop (--threads 0: views run on it): it stops beating,
    the master SIGKILLs it within worker_timeout (plus a beat's slack), logs why,
    starts another, and every worker serves again; the healthy worker is left alone."""
    server = start_workers(COMET_THREADS="0")
    pids = server.worker_pids()
    client = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        client.sendall(b"GET /block?s=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        blocked_at = time.monotonic()
        victim = wait_until(lambda: helpers.owner_of(server.port, client.getsockname()[1],
                                                     pids), 5, "a worker to take the request")
        wait_until(lambda: victim not in server.worker_pids(), WORKER_TIMEOUT + SLACK,
                   f"the master to kill hung worker {victim}", interval=0.01)
        killed_after = time.monotonic() - blocked_at
        assert client.recv(100) == b"", "the hung worker answered"  # its socket closed
    finally:
        client.close()
    wait_until(lambda: len(server.worker_pids()) == 2, 5, "a replacement worker")
    assert pids - {victim} <= server.worker_pids(), "the healthy worker was killed too"
    wait_until(lambda: server.subscriptions() >= 3, 10, "the replacement to subscribe")
    pinned = server.pin_workers()
    try:
        assert all(_hello(conn) == b"hello" for conn in pinned.values())
    finally:
        for conn in pinned.values():
            conn.close()
    log = server.log()
    assert f"worker {victim} hung: no heartbeat for" in log, log
    assert killed_after > WORKER_TIMEOUT - 0.6  # not killed before its time (a beat is 0.5 s)
    print(f"hung worker killed {killed_after:.2f}s after it blocked "
          f"(worker_timeout {WORKER_TIMEOUT}s)")


def test_a_view_longer_than_the_worker_timeout_runs_to_its_end(start_workers) -> None:
    """On the pool a view does not hold the loop: a view running twice the worker
    timeout leaves its worker beating, and answers."""
    server = start_workers(workers=1)
    pids = server.worker_pids()
    started = time.monotonic()
    client = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    with client:
        client.sendall(b"GET /block?s=%g HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                       % (2 * WORKER_TIMEOUT + SLACK))
        answer = b""
        while not answer.endswith(b"unblocked") and (data := client.recv(4096)):
            answer += data
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"unblocked"), answer
    assert time.monotonic() - started >= 2 * WORKER_TIMEOUT
    assert server.worker_pids() == pids, "the worker running the long view was killed"
    assert "hung" not in server.log()


def test_the_master_stops_at_once_on_sigterm(start_workers) -> None:
    """Idle workers drain at once; the master, woken by SIGTERM and then by each
    SIGCHLD (no polling interval), exits 0 well within a second."""
    server = start_workers()
    pids = server.worker_pids()
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(10)
    took = time.monotonic() - started
    assert code == 0, server.log()
    assert not any(_alive(pid) for pid in pids)
    assert took < 1.0, f"the master took {took:.2f}s to stop"
    print(f"master exited {took:.3f}s after SIGTERM")


def test_sigterm_drains_the_parked_requests_of_every_worker(start_workers) -> None:
    """A long-poll parked on each worker is answered (empty) when the master is told
    to stop, and the master then exits 0 promptly."""
    server = start_workers()
    pinned = server.pin_workers()
    try:
        for conn in pinned.values():
            conn.request("GET", "/wait/supervision-drain?timeout=60")
        wait_until(lambda: sum(s["parked"] for s in server.stats_by_worker().values()) == 2,
                   10, "a parked long-poll on each worker")
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        for conn in pinned.values():
            resp = conn.getresponse()
            assert resp.status == 200
            assert b'"events": []' in resp.read()
        code = server.proc.wait(10)
        took = time.monotonic() - started
    finally:
        for conn in pinned.values():
            conn.close()
    assert code == 0, server.log()
    assert took < 2.0, f"the drain took {took:.2f}s"


def test_workers_leave_when_the_master_is_killed(start_workers) -> None:
    """SIGKILL the master: its workers get SIGTERM from the kernel (PR_SET_PDEATHSIG),
    drain and exit within two seconds, and the port stops answering."""
    server = start_workers()
    pids = server.worker_pids()
    assert len(pids) == 2
    started = time.monotonic()
    server.proc.kill()
    server.proc.wait(10)
    wait_until(lambda: not any(_alive(pid) for pid in pids), 2.0,
               f"the orphaned workers {pids} to exit", interval=0.01)
    gone_after = time.monotonic() - started
    wait_until(lambda: _refused(server.port), 1.0, "the port to stop answering")
    print(f"orphaned workers gone {gone_after:.3f}s after the master's SIGKILL")


class _FakeServer:
    """What Heartbeat uses of a CometServer: its loop's call_later, stopping, shutdown."""

    def __init__(self) -> None:
        self.stopping = False
        self.shutdowns = 0
        self.timers: list[float] = []
        self.loop = self

    def call_later(self, seconds: float, fn: Callable[[], None]) -> None:
        self.timers.append(seconds)

    def shutdown(self) -> None:
        self.shutdowns += 1
        self.stopping = True


def test_heartbeat_beats_and_drains_once_its_master_is_gone() -> None:
    """The fallback when PR_SET_PDEATHSIG is not there: each beat writes a byte while
    the parent is the master, and drains the server (once) when it no longer is."""
    read_end, write_end = os.pipe()
    try:
        server = _FakeServer()
        beat = Heartbeat(write_end, 8.0, os.getppid())
        beat.start(server)  # type: ignore[arg-type]
        beat.beat()
        assert os.read(read_end, 100) == b".."
        assert server.timers == [2.0, 2.0] and server.shutdowns == 0
        beat.master_pid = -1  # as if the master died: our parent is another process now
        beat.beat()
        beat.beat()
        assert server.shutdowns == 1
        os.set_blocking(read_end, False)
        with pytest.raises(BlockingIOError):
            os.read(read_end, 100)
    finally:
        os.close(read_end)
        os.close(write_end)

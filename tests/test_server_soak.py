"""Soak: thousands of park / publish / abort cycles must not leak memory or waiters."""

from __future__ import annotations

import socket
import struct
import time

import requests

from tests.helpers.http import build_request, connect, read_response
from tests.helpers.proc import ServerProcess

BATCHES = 20
POLLS = 250  # per batch: half aborted while parked, half woken by a publish
STREAMS = 20  # per batch: event streams aborted while parked
MAX_GROWTH_KIB = 15 * 1024


def open_request(server: ServerProcess, path: str) -> socket.socket:
    sock = connect(server.port)
    sock.sendall(build_request("GET", path))
    return sock


def abort(sock: socket.socket, reset: bool) -> None:
    """Leave like a browser tab closing: FIN, or RST when ``reset``."""
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def run_batch(server: ServerProcess, n: int) -> None:
    """Park POLLS long-polls and STREAMS streams, abort half the polls and every stream,
    wake the rest with one publish, and check the server is back to idle."""
    channel = f"soak-{n}"
    polls = [open_request(server, f"/wait/{channel}?after=0&timeout=60") for _ in range(POLLS)]
    streams = [open_request(server, f"/stream/{channel}-s?duration=60") for _ in range(STREAMS)]
    server.wait_stats(lambda s: s["parked"] == POLLS + STREAMS, timeout=15,
                      message=f"batch {n} parked")
    aborted, kept = polls[::2], polls[1::2]
    for i, sock in enumerate(aborted + streams):
        abort(sock, reset=i % 3 == 0)
    server.wait_stats(lambda s: s["parked"] == len(kept) and s["streaming"] == 0, timeout=5,
                      message=f"batch {n} aborts dropped")
    response = requests.post(server.url(f"/pub/{channel}?cursor=1"), json={"batch": n},
                             timeout=10)
    assert response.status_code == 200
    for sock in kept:
        with sock.makefile("rb") as reader:
            answer = read_response(reader)
        assert answer.json()["events"] == [{"cursor": 1, "payload": {"batch": n}}]
        sock.close()
    server.wait_stats(lambda s: s["parked"] == 0 and s["waiters"] == 0, timeout=5,
                      message=f"batch {n} idle")


def test_park_publish_abort_soak_does_not_leak(start_server) -> None:
    """5400 cycles on one process: RSS stays flat after warm-up, nothing stays parked."""
    server = start_server("--no-access-log")
    t0 = time.monotonic()
    run_batch(server, 0)  # warm-up: allocators and caches reach their working size
    rss_warm = server.rss_kib()
    for n in range(1, BATCHES):
        run_batch(server, n)
    rss_end = server.rss_kib()
    stats = server.wait_stats(lambda s: s["connections"] <= 1, timeout=5,
                              message="connections closed")
    assert stats["parked"] == 0 and stats["waiters"] == 0 and stats["streaming"] == 0
    assert stats["published_total"] == BATCHES
    print(f"RSS after warm-up {rss_warm} KiB, at the end {rss_end} KiB", stats)
    assert rss_end - rss_warm < MAX_GROWTH_KIB, (rss_warm, rss_end)
    assert time.monotonic() - t0 < 60
    assert "Traceback" not in server.stderr()

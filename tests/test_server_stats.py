"""The stats endpoint: right counters, and loopback-only unless --stats-public."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.helpers.http import build_request, exchange


def non_loopback_address() -> str | None:
    """An address of this host that is not loopback (None when there is none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # routing only: UDP connect sends nothing
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_stats_count_requests_and_publishes(start_server) -> None:
    """requests_total and published_total follow what the server did."""
    server = start_server()
    before = server.stats()
    for _ in range(3):
        requests.get(server.url("/hello"), timeout=10)
    requests.post(server.url("/pub/stats?cursor=1"), json=1, timeout=10)
    after = server.stats()
    assert after["requests_total"] - before["requests_total"] == 5  # 3 + pub + stats
    assert after["published_total"] - before["published_total"] == 1
    assert after["parked"] == after["streaming"] == after["waiters"] == 0
    assert after["uptime_s"] >= before["uptime_s"]
    assert set(after) >= {"parked", "streaming", "connections", "requests_total",
                          "published_total", "waiters", "uptime_s"}


@pytest.mark.parametrize("public", [False, True], ids=["loopback-only", "public"])
def test_stats_refused_to_remote_clients_unless_public(start_server, public: bool) -> None:
    """Counters are operational data: a non-loopback client gets 403 by default."""
    address = non_loopback_address()
    if address is None:
        pytest.skip("this host has no non-loopback address")
    server = start_server(*(["--stats-public"] if public else []), host="0.0.0.0")
    raw = build_request("GET", "/_comet/stats")
    response = exchange(server.port, raw, host=address)[0]
    assert response.status == (200 if public else 403)
    if public:
        assert "parked" in response.json()
    assert exchange(server.port, raw)[0].status == 200  # loopback is always served

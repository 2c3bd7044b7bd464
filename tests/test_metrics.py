"""/metrics against a known load, read with prometheus-client's own parser; the
event-loop lag; the health endpoints; the access log's fields and its JSON format."""

from __future__ import annotations

import json
import signal
import socket
import uuid

import pytest
import requests

from tests.helpers.http import build_request, connect, exchange, read_response
from tests.helpers.proc import wait_until
from tests.helpers.scrape import scrape, wait_scrape
from tests.test_server_stats import non_loopback_address


def park(port: int, path: str) -> tuple[socket.socket, object]:
    sock = connect(port)
    sock.sendall(build_request("GET", path))
    return sock, sock.makefile("rb")


def test_exposition_counts_a_known_load(start_server) -> None:
    """N parked long-polls, M publishes of which one wakes them: K = N deliveries,
    one fan-out, N parked times; the gauges return to zero once answered."""
    server = start_server()
    channel, idle = f"m-{uuid.uuid4().hex[:6]}", f"idle-{uuid.uuid4().hex[:6]}"
    before = scrape(server.port)
    assert before.types["comet_request_duration_seconds"] == "histogram"
    assert before.types["comet_deliveries"] == "counter"
    n, m = 5, 3
    parked = [park(server.port, f"/wait/{channel}?timeout=30") for _ in range(n)]
    try:
        during = wait_scrape(server.port, lambda s: s.value("comet_parked") == n,
                             message=f"{n} parked")
        assert during.value("comet_waiters") == n
        assert during.value("comet_connections_open") >= n + 1  # + the scrape's own
        for i in range(m - 1):  # publishes that wake nobody
            requests.post(server.url(f"/pub/{idle}?cursor={i + 1}"), json=i, timeout=10)
        requests.post(server.url(f"/pub/{channel}?cursor=7"), json="go", timeout=10)
        for _, reader in parked:
            response = read_response(reader)
            assert response.status == 200
            assert response.json()["events"][0]["payload"] == "go"
    finally:
        for sock, reader in parked:
            reader.close()
            sock.close()
    after = wait_scrape(server.port, lambda s: s.value("comet_parked") == 0,
                        message="nothing parked")

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("comet_published_total") == m
    assert delta("comet_deliveries_total") == n
    assert delta("comet_fanout_seconds_count") == 1
    assert delta("comet_parked_seconds_count") == n
    assert after.value("comet_waiters") == 0
    # n long-polls + m publishes + the scrapes in between (at least one while parked)
    assert delta("comet_responses_total", code="2xx") >= n + m + 1
    assert delta("comet_connections_accepted_total") >= n + m + 1
    assert delta("comet_response_bytes_total") > 0
    assert after.value("comet_request_duration_seconds_bucket", le="+Inf") == \
        after.value("comet_request_duration_seconds_count")
    assert after.value("comet_process_resident_memory_bytes") > 10 << 20
    assert after.value("comet_process_open_fds") >= 3
    assert after.value("comet_workers") == 1
    assert after.workers() == {str(server.pid)}


def test_loop_lag_shows_a_view_that_blocks_the_loop(start_server) -> None:
    """A view sleeping 0.6 s on the loop (--threads 0: no pool) holds it: the lag
    probe fires that late once."""
    server = start_server("--threads", "0")
    before = scrape(server.port)
    slow_before = before.value("comet_loop_lag_seconds_count") - \
        before.value("comet_loop_lag_seconds_bucket", le="0.25")
    assert requests.get(server.url("/block?s=0.6"), timeout=10).text == "unblocked"
    after = scrape(server.port)
    slow_after = after.value("comet_loop_lag_seconds_count") - \
        after.value("comet_loop_lag_seconds_bucket", le="0.25")
    assert slow_after - slow_before >= 1
    assert after.value("comet_loop_lag_seconds_sum") - \
        before.value("comet_loop_lag_seconds_sum") >= 0.4
    live = requests.get(server.url("/_comet/live"), timeout=10)
    assert live.status_code == 200 and live.json()["live"] is True


def test_metrics_are_for_loopback_unless_public(start_server) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this host has no non-loopback address")
    server = start_server(host="0.0.0.0")
    raw = build_request("GET", "/metrics")
    assert exchange(server.port, raw, host=address)[0].status == 403
    assert exchange(server.port, build_request("GET", "/_comet/ready"), host=address)[0] \
        .status == 200  # health checks are for load balancers: any client
    assert exchange(server.port, raw)[0].status == 200


def test_metrics_path_empty_turns_metrics_off(start_server) -> None:
    server = start_server("--metrics-path", "")
    assert requests.get(server.url("/metrics"), timeout=10).status_code == 404
    assert requests.get(server.url("/_comet/ready"), timeout=10).status_code == 200


def test_ready_flips_while_draining(start_server) -> None:
    """Ready until SIGTERM; a request already on its way while the process drains is
    answered 503 "draining" (live stays 200: the loop still turns)."""
    server = start_server("--shutdown-grace", "10")
    assert requests.get(server.url("/_comet/ready"), timeout=10).json() == \
        {"ready": True, "reasons": []}
    with connect(server.port) as ready, connect(server.port) as live, \
            ready.makefile("rb") as ready_reader, live.makefile("rb") as live_reader:
        # Half a request each: the drain leaves such connections to be served.
        ready.sendall(b"GET /_comet/ready HTTP/1.1\r\n")
        live.sendall(b"GET /_comet/live HTTP/1.1\r\n")
        wait_scrape(server.port, lambda s: s.value("comet_connections_open") >= 3,
                    message="both connections accepted")
        server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "draining" in server.stderr(), 10, "the drain to start")
        ready.sendall(b"Host: x\r\n\r\n")
        live.sendall(b"Host: x\r\n\r\n")
        answer = read_response(ready_reader)
        assert answer.status == 503
        assert answer.json() == {"ready": False, "reasons": ["draining"]}
        assert read_response(live_reader).status == 200
    assert server.proc.wait(15) == 0


def test_access_log_json_fields(start_server) -> None:
    """--log-format json: one object per line, the access fields named and escaped;
    a parked answer whose client left is logged as not delivered."""
    server = start_server("--log-format", "json")
    channel = f"log-{uuid.uuid4().hex[:6]}"
    assert exchange(server.port, build_request("GET", '/hello?q="x\\'))[0].status == 200
    sock, reader = park(server.port, f"/wait/{channel}?timeout=30")
    wait_scrape(server.port, lambda s: s.value("comet_parked") == 1, message="parked")
    reader.close()
    sock.close()

    def lines() -> list[dict]:
        return [json.loads(line) for line in server.stderr().splitlines()
                if line.startswith("{")]

    def gone() -> dict | None:
        return next((r for r in lines() if r.get("path", "").startswith(f"/wait/{channel}")),
                    None)

    record = wait_until(gone, 10, "the parked request's line")
    assert record["delivered"] is False and record["status"] == 499
    assert record["parked_ms"] > 0
    hello = next(r for r in lines() if r.get("path", "").startswith("/hello"))
    assert hello["path"] == "/hello?q=\\x22x\\x5c"
    assert hello["status"] == 200 and hello["bytes"] == 5 and hello["delivered"] is True
    assert hello["method"] == "GET" and hello["client"] == "127.0.0.1"
    assert hello["duration_ms"] >= 0 and hello["logger"] == "comet_server.access"


def test_event_streams_are_counted(start_server) -> None:
    """Open SSE streams show as event streams; each batch they get is a delivery, and
    each batch written to all of them a fan-out."""
    server = start_server()
    channel = f"sse-{uuid.uuid4().hex[:6]}"
    before = scrape(server.port)
    streams = []
    try:
        for _ in range(2):
            sock = connect(server.port)
            sock.sendall(build_request("GET", f"/sse/{channel}"))
            streams.append(sock)
        wait_scrape(server.port, lambda s: s.value("comet_event_streams_open") == 2,
                    message="two event streams")
        for cursor in (1, 2):  # one batch at a time: each reaches both streams
            requests.post(server.url(f"/pub/{channel}?cursor={cursor}"), json=cursor,
                          timeout=10)
            after = wait_scrape(server.port, lambda s, n=2 * cursor:
                                s.value("comet_deliveries_total")
                                - before.value("comet_deliveries_total") == n,
                                message=f"batch {cursor} to each stream")
        assert after.value("comet_streams_open") >= 2
        # Each batch written to every stream is one fan-out in the histogram.
        assert after.value("comet_fanout_seconds_count") \
            - before.value("comet_fanout_seconds_count") == 2
    finally:
        for sock in streams:
            sock.close()
    wait_scrape(server.port, lambda s: s.value("comet_event_streams_open") == 0,
                message="streams closed")

"""The pieces of the metrics without a server: bucket semantics, sums over workers,
the collector's exposition (read back with prometheus-client's parser), the log
escaping and the JSON log format."""

from __future__ import annotations

import json
import logging

from comet_server.protocol.responder import escape
from comet_server.serving.logs import JsonFormatter
from comet_server.serving.metrics import Histogram, ServerMetrics, exposition
from comet_server.serving.snapshot import sum_snapshots
from tests.helpers.scrape import Scrape


def test_histogram_buckets_are_less_or_equal() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.1, 0.100001, 1.0, 5.0, 0.0):
        histogram.observe(value)
    assert histogram.counts == [2, 2, 1]  # <= 0.1, <= 1.0, +Inf
    assert abs(histogram.sum - 6.200001) < 1e-9


def snapshot(worker: int, parked: int, lag: list[int]) -> dict:
    hist = {"bounds": [0.1, 1.0], "counts": [0, 0, 0], "sum": 0.0}
    return {
        "worker": worker, "time": 0.0, "connections": parked + 1, "accepted_total": 9,
        "requests_total": 10, "parked": parked, "streaming": 0, "event_streams": 0,
        "event_streams_cut_slow": 0, "waiters": parked,
        "published_total": 2, "delivered_total": 3, "bytes_written": 100, "accepting": 1,
        "stopping": 0, "body_bytes_held": 0, "uptime_s": 5.0 * worker, "rss_bytes": 1000,
        "open_fds": 10, "cap_hits": {"max_connections": 1, "max_per_client": 0,
                                     "out_of_fds": 0},
        "refused_total": {"400": worker}, "responses": {"1xx": 0, "2xx": 7, "3xx": 0,
                                                        "4xx": 1, "5xx": 0},
        "not_delivered": 1, "request_seconds": hist, "parked_seconds": hist,
        "fanout_seconds": hist,
        "loop_lag_seconds": {"bounds": [0.1, 1.0], "counts": lag, "sum": 0.5},
        "loop_lag_last_s": 0.01 * worker, "broker": {"connected": worker == 1,
                                                     "reconnects": worker},
    }


def test_sums_and_exposition_over_workers() -> None:
    workers = [snapshot(1, 2, [5, 1, 0]), snapshot(2, 3, [4, 0, 1])]
    total = sum_snapshots(workers)
    assert total["parked"] == 5 and total["workers"] == 2
    assert total["loop_lag_seconds"]["counts"] == [9, 1, 1]
    assert total["refused_total"] == {"400": 3}
    assert total["uptime_s"] == 10.0 and total["loop_lag_last_s"] == 0.02  # the largest

    body, content_type = exposition(lambda: workers)
    assert content_type.startswith("text/plain; version=")
    scrape = Scrape(body.decode())
    assert scrape.workers() == {"1", "2"}
    assert scrape.value("comet_parked") == 5
    assert scrape.per_worker("comet_parked") == {"1": 2, "2": 3}
    assert scrape.value("comet_loop_lag_seconds_bucket", le="0.1") == 9
    assert scrape.value("comet_loop_lag_seconds_bucket", le="+Inf") == 11
    assert scrape.value("comet_loop_lag_seconds_count") == 11
    assert scrape.value("comet_broker_connected") == 1
    assert scrape.value("comet_requests_refused_total", status="400") == 3
    assert scrape.value("comet_connections_rejected_total", cause="max_connections") == 2
    assert scrape.value("comet_responses_total", code="2xx") == 14
    assert scrape.value("comet_workers") == 2


def test_escape_keeps_a_log_line_one_line() -> None:
    assert escape(b"/plain?a=1&b=%20") == "/plain?a=1&b=%20"
    assert escape(b'/x?"\\\x1b[31m\r\n\xe9 ') == "/x?\\x22\\x5c\\x1b[31m\\x0d\\x0a\\xe9\\x20"


def test_json_formatter() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("comet_server.access", logging.INFO, __file__, 1, "%s", ("x",),
                               None)
    record.access = {"path": "/a\\x22", "status": 200, "delivered": True}
    line = formatter.format(record)
    assert "\n" not in line
    assert json.loads(line) | {"time": ""} == {
        "time": "", "level": "INFO", "logger": "comet_server.access", "path": "/a\\x22",
        "status": 200, "delivered": True}
    plain = logging.LogRecord("comet_server.redis", logging.WARNING, __file__, 1,
                              "lost (%s)\nsecond line", ("why",), None)
    assert json.loads(formatter.format(plain))["message"] == "lost (why)\nsecond line"


def test_observe_many_counts_as_observe_does() -> None:
    values = [0.0, 0.1, 0.1000001, 0.5, 1.0, 1.5, 99.0]
    one, many = Histogram((0.1, 1.0, 2.0)), Histogram((0.1, 1.0, 2.0))
    for value in values:
        one.observe(value)
    many.observe_many(list(reversed(values)))
    assert one.counts == many.counts == [2, 3, 1, 1]
    assert abs(one.sum - many.sum) < 1e-9


def test_responses_folded_in_bulk() -> None:
    metrics = ServerMetrics()
    metrics.batch.extend((200, 5, 0.002, 0.0, 200, 7, 0.3, 0.25, 499, 0, 2.0, 1.9,
                          500, 22, 0.001, 0.0))
    metrics.fold()
    assert metrics.batch == []
    assert metrics.responses_by_class[2] == 2 and metrics.responses_by_class[4] == 1
    assert metrics.responses_by_class[5] == 1 and metrics.bytes_written == 34
    assert sum(metrics.request_seconds.counts) == 4
    assert sum(metrics.parked_seconds.counts) == 2  # only the two that parked
    assert abs(metrics.parked_seconds.sum - 2.15) < 1e-9

"""What one server process measures, and the Prometheus exposition of every worker.

Cost first: the request path only adds to plain integers and drops an observation
into a fixed bucket list (``Histogram.observe``: one bisect); nothing of
``prometheus_client`` runs per request.  At scrape time ``WorkerCollector`` reads the
numbers (``snapshot``) and yields metric families that ``generate_latest`` (the
library's own exposition) writes.

Workers (``--workers N``) share one listening socket, so a scrape lands on any of
them.  Each worker writes its snapshot to ``<metrics_dir>/<pid>.json`` once a second
(write and rename: a reader never sees half a file) and the worker a scrape reaches
emits every worker's series, with a ``worker`` label: its own numbers fresh, the
others' at most a second old.  The supervisor removes a dead worker's file.  Chosen
over ``prometheus_client``'s multiprocess mode, which needs the library's metric
objects (a lock and an mmap write) on every observation, and over a master-side
aggregate, which would give the master an HTTP server of its own.
"""

from __future__ import annotations

import json
import os
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

if TYPE_CHECKING:
    from comet_server.loop import EventLoop

__all__ = ["Histogram", "LagProbe", "ServerMetrics", "SnapshotStore", "WorkerCollector",
           "sum_snapshots", "exposition"]

# Bucket upper bounds, in seconds.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0, 60.0)
PARKED_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 25.0, 30.0, 60.0, 300.0)
FANOUT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
QUEUED_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

LAG_INTERVAL = 0.1  # seconds between two loop-lag probes
SNAPSHOT_EVERY = 10  # probes between two snapshot files (1 s)
FOLD_AT = 4 * 8192  # batch length (4 numbers a response) the lag probe folds at
STALE_AFTER = 5.0  # a worker file older than this is a hung worker's: not shown
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class Histogram:
    """Counts per fixed bucket and a sum: what an observation costs is one bisect."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # buckets are "<= bound"
        self.sum += value

    def observe_many(self, values: list[float], presorted: bool = False) -> None:
        """Observe every value (sorted once, then one bisect per bucket)."""
        ordered = values if presorted else sorted(values)
        counts = self.counts
        below = 0
        for index, bound in enumerate(self.bounds):
            upto = bisect_right(ordered, bound)
            counts[index] += upto - below
            below = upto
        counts[-1] += len(ordered) - below
        self.sum += sum(ordered)

    def to_json(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "sum": self.sum}


class ServerMetrics:
    """The server's own observations (``protocol.responder.ResponseObserver``):
    responses land in ``batch`` (four numbers each) and are folded into the counters
    and histograms before a snapshot (a scrape, the status feed, the worker's file)
    and by the lag probe once 8,192 are waiting (about 0.6 MiB), in bulk: sorting and
    bisecting a batch is mostly C code, where a call per response is not."""

    def __init__(self) -> None:
        self.batch: list[float] = []
        self.not_delivered = 0
        self.responses_by_class = [0] * 10  # index: status // 100
        self.bytes_written = 0
        self.request_seconds = Histogram(REQUEST_BUCKETS)
        self.parked_seconds = Histogram(PARKED_BUCKETS)
        self.fanout_seconds = Histogram(FANOUT_BUCKETS)
        self.loop_lag_seconds = Histogram(LAG_BUCKETS)
        self.queued_seconds = Histogram(QUEUED_BUCKETS)  # waiting for a pool thread
        self.last_lag = 0.0

    def fold(self) -> None:
        """Count the responses recorded since the last fold."""
        batch = self.batch
        if not batch:
            return
        codes, sent, elapsed, parked = batch[0::4], batch[1::4], batch[2::4], batch[3::4]
        batch.clear()  # the same list: responders hold it
        by_class = self.responses_by_class
        for code, count in Counter(codes).items():
            by_class[int(code) // 100] += count
        self.bytes_written += int(sum(sent))
        self.request_seconds.observe_many(elapsed)
        parked.sort()
        waited = parked[bisect_right(parked, 0.0):]
        if waited:
            self.parked_seconds.observe_many(waited, presorted=True)


class LagProbe:
    """Event-loop lag: a timer every ``LAG_INTERVAL`` notes how late it fires.  A view
    or a fan-out that holds the loop shows as lag; so does a loop that stops turning
    (the probe then stops too, and the next one records the whole stall).  Every
    ``SNAPSHOT_EVERY`` probes it also calls ``every_second`` (the snapshot file)."""

    def __init__(self, loop: EventLoop, metrics: ServerMetrics,
                 every_second: Callable[[], None] | None = None) -> None:
        self.loop = loop
        self.metrics = metrics
        self.every_second = every_second
        self.ticks = 0
        self.due = 0.0
        self.stopped = False

    def start(self) -> None:
        self.due = time.monotonic() + LAG_INTERVAL
        self.loop.call_later(LAG_INTERVAL, self._fire)

    def stop(self) -> None:
        self.stopped = True

    def _fire(self) -> None:
        if self.stopped:
            return
        lag = max(0.0, time.monotonic() - self.due)
        if len(self.metrics.batch) >= FOLD_AT:
            self.metrics.fold()
        self.metrics.loop_lag_seconds.observe(lag)
        self.metrics.last_lag = lag
        self.ticks += 1
        if self.every_second is not None and self.ticks % SNAPSHOT_EVERY == 0:
            self.every_second()
        self.start()


def process_figures() -> dict[str, int]:
    """This process's resident memory and open descriptors (Linux /proc; 0 elsewhere)."""
    rss = fds = 0
    try:
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        fds = len(os.listdir("/proc/self/fd"))
    except (OSError, ValueError, IndexError):
        pass
    return {"rss_bytes": rss, "open_fds": fds}


# -- many workers -------------------------------------------------------------------------


class SnapshotStore:
    """One JSON file per worker in ``directory``."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def path(self, pid: int) -> Path:
        return self.directory / f"{pid}.json"

    def write(self, snapshot: dict[str, Any]) -> None:
        pid = snapshot["worker"]
        temporary = self.directory / f".{pid}.tmp"
        try:
            temporary.write_text(json.dumps(snapshot))
            os.replace(temporary, self.path(int(pid)))
        except OSError:
            pass  # the directory went away (the master is stopping)

    def others(self, own_pid: int) -> list[dict[str, Any]]:
        """The other live workers' last snapshots (stale ones left out)."""
        found = []
        now = time.time()
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        for name in names:
            if not name.endswith(".json") or name == f"{own_pid}.json":
                continue
            try:
                snapshot = json.loads((self.directory / name).read_text())
            except (OSError, ValueError):
                continue  # removed meanwhile
            if now - snapshot.get("time", 0) <= STALE_AFTER:
                found.append(snapshot)
        return found

    @staticmethod
    def forget(directory: str, pid: int) -> None:
        """A worker is gone: its numbers leave the scrape (the master calls this)."""
        try:
            os.unlink(os.path.join(directory, f"{pid}.json"))
        except OSError:
            pass


# -- the exposition -----------------------------------------------------------------------

# (kind, name, help, key in a snapshot) of the one-number-per-worker series.
SCALARS: tuple[tuple[str, str, str, str], ...] = (
    ("gauge", "comet_connections_open", "Open client connections.", "connections"),
    ("counter", "comet_connections_accepted", "Connections accepted.", "accepted_total"),
    ("counter", "comet_requests", "Requests read (answered or not yet).", "requests_total"),
    ("gauge", "comet_parked", "Responses parked (a long-poll, or a stream between "
     "chunks).", "parked"),
    ("gauge", "comet_streams_open", "Streaming responses under way (event streams "
     "included).", "streaming"),
    ("gauge", "comet_event_streams_open", "Server-Sent Event streams following the hub.",
     "event_streams"),
    ("counter", "comet_event_streams_cut_slow", "Event streams cut for holding too much "
     "unread.", "event_streams_cut_slow"),
    ("gauge", "comet_waiters", "Hub waiters (parked long-polls and streams waiting for "
     "events).", "waiters"),
    ("counter", "comet_published", "Events published from this process.", "published_total"),
    ("counter", "comet_deliveries", "Waiters woken with events, and batches of events "
     "handed to event streams.", "delivered_total"),
    ("counter", "comet_response_bytes", "Response body bytes written.", "bytes_written"),
    ("gauge", "comet_accepting", "1 while the listener accepts (not at its cap, not "
     "draining).", "accepting"),
    ("gauge", "comet_draining", "1 once the process drains (SIGTERM).", "stopping"),
    ("gauge", "comet_body_bytes_held", "Bytes held by unfinished request bodies.",
     "body_bytes_held"),
    ("gauge", "comet_process_resident_memory_bytes", "Resident memory.", "rss_bytes"),
    ("gauge", "comet_process_open_fds", "Open file descriptors.", "open_fds"),
    ("gauge", "comet_threads", "Threads that run application code (0: it runs on the "
     "event loop).", "threads"),
    ("gauge", "comet_threads_busy", "Threads running application code now.",
     "threads_busy"),
    ("gauge", "comet_queued", "Jobs waiting for a thread (new requests and steps of "
     "admitted ones).", "queued"),
    ("counter", "comet_queue_refused", "Requests answered 503 because the queue for "
     "threads was full.", "queue_refused_total"),
    ("gauge", "comet_uptime_seconds", "Seconds since the server started.", "uptime_s"),
)
HISTOGRAMS = (
    ("comet_request_duration_seconds", "From a request read to its last byte written.",
     "request_seconds"),
    ("comet_parked_seconds", "Time a response spent parked.", "parked_seconds"),
    ("comet_fanout_seconds", "From an event's arrival to the last waiter it woke (or the "
     "last event stream it was written to).",
     "fanout_seconds"),
    ("comet_loop_lag_seconds", "How late a timer fires: the event loop's lag.",
     "loop_lag_seconds"),
    ("comet_queued_seconds", "How long application work waited for a thread.",
     "queued_seconds"),
)


def _families(snapshots: list[dict[str, Any]]) -> Iterator[Metric]:
    workers = sorted(snapshots, key=lambda s: s["worker"])
    for kind, name, help_text, key in SCALARS:
        family: GaugeMetricFamily | CounterMetricFamily
        family = (GaugeMetricFamily if kind == "gauge" else CounterMetricFamily)(
            name, help_text, labels=["worker"])
        for snap in workers:
            family.add_metric([str(snap["worker"])], float(snap.get(key, 0)))
        yield family
    rejected = CounterMetricFamily("comet_connections_rejected", "Connections refused or "
                                   "put off, by cause.", labels=["worker", "cause"])
    refused = CounterMetricFamily("comet_requests_refused", "Requests refused while being "
                                  "read (framing, limits), by status.",
                                  labels=["worker", "status"])
    responses = CounterMetricFamily("comet_responses", "Responses ended, by status class.",
                                    labels=["worker", "code"])
    undelivered = CounterMetricFamily("comet_responses_undelivered", "Responses whose "
                                      "end never reached the client (gone, cut).",
                                      labels=["worker"])
    broker_up = GaugeMetricFamily("comet_broker_connected", "1 while the broker "
                                  "subscription is up (absent without a broker).",
                                  labels=["worker"])
    reconnects = CounterMetricFamily("comet_broker_reconnects", "Broker connection "
                                     "attempts after a loss.", labels=["worker"])
    for snap in workers:
        worker = str(snap["worker"])
        for cause, count in sorted(snap["cap_hits"].items()):
            rejected.add_metric([worker, cause], count)
        for status, count in sorted(snap["refused_total"].items()):
            refused.add_metric([worker, status], count)
        for label in STATUS_CLASSES:
            responses.add_metric([worker, label], snap["responses"][label])
        undelivered.add_metric([worker], snap["not_delivered"])
        broker = snap.get("broker")
        if broker is not None:
            broker_up.add_metric([worker], 1.0 if broker["connected"] else 0.0)
            reconnects.add_metric([worker], broker["reconnects"])
    yield from (rejected, refused, responses, undelivered, broker_up, reconnects)
    for name, help_text, key in HISTOGRAMS:
        histogram = HistogramMetricFamily(name, help_text, labels=["worker"])
        for snap in workers:
            data = snap.get(key)
            if data is None:  # a worker of an older version, during an upgrade
                continue
            cumulative, buckets = 0, []
            for bound, count in zip([*data["bounds"], float("inf")], data["counts"],
                                    strict=True):
                cumulative += count
                buckets.append((_le(bound), cumulative))
            histogram.add_metric([str(snap["worker"])], buckets, data["sum"])
        yield histogram
    workers_family = GaugeMetricFamily("comet_workers", "Worker processes in this scrape.")
    workers_family.add_metric([], len(workers))
    yield workers_family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class WorkerCollector(Collector):
    """A ``prometheus_client`` collector over the snapshots ``source`` returns."""

    def __init__(self, source: Callable[[], list[dict[str, Any]]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from _families(self.source())


def exposition(source: Callable[[], list[dict[str, Any]]]) -> tuple[bytes, str]:
    """The Prometheus text of ``source``'s snapshots, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(source))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def sum_snapshots(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Every worker's numbers added up (histograms bucket by bucket): the totals a
    status page shows.  Gauges such as ``accepting`` become counts of workers; the
    last loop lag and the uptime are the largest."""
    total: dict[str, Any] = {}
    for snap in snapshots:
        for key, value in snap.items():
            if key in ("worker", "time", "caps", "broker"):
                continue
            if key in ("loop_lag_last_s", "uptime_s"):
                total[key] = max(total.get(key, 0), value)
            elif isinstance(value, bool | int | float):
                total[key] = total.get(key, 0) + value
            elif isinstance(value, dict) and "counts" in value:
                into = total.setdefault(key, {"bounds": value["bounds"],
                                              "counts": [0] * len(value["counts"]),
                                              "sum": 0.0})
                into["counts"] = [a + b for a, b in zip(into["counts"], value["counts"],
                                                        strict=True)]
                into["sum"] += value["sum"]
            elif isinstance(value, dict):
                into = total.setdefault(key, {})
                for name, count in value.items():
                    into[name] = into.get(name, 0) + count
    total["workers"] = len(snapshots)
    return total

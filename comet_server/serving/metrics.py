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
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from comet_server.serving.snapshot import HISTOGRAMS, LABELLED, SCALARS, HistogramData

if TYPE_CHECKING:
    from comet_server.loop import EventLoop

__all__ = ["Histogram", "LagProbe", "ServerMetrics", "SnapshotStore", "WorkerCollector",
           "exposition"]

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

    def to_json(self) -> HistogramData:
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


def process_figures() -> tuple[int, int]:
    """This process's resident memory and open descriptors (Linux /proc; 0 elsewhere)."""
    rss = fds = 0
    try:
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        fds = len(os.listdir("/proc/self/fd"))
    except (OSError, ValueError, IndexError):
        pass
    return rss, fds


# -- many workers -------------------------------------------------------------------------


class SnapshotStore:
    """One JSON file per worker in ``directory``."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def path(self, pid: int) -> Path:
        return self.directory / f"{pid}.json"

    def write(self, snapshot: Mapping[str, Any]) -> None:
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

def _families(snapshots: Sequence[Mapping[str, Any]]) -> Iterator[Metric]:
    """The series of every worker, as ``WorkerSnapshot``'s annotations declare them (a
    figure an older worker's snapshot lacks is 0, or left out for a histogram)."""
    workers = sorted(snapshots, key=lambda s: s["worker"])
    for key, scalar in SCALARS:
        family: GaugeMetricFamily | CounterMetricFamily
        family = (GaugeMetricFamily if scalar.kind == "gauge" else CounterMetricFamily)(
            scalar.name, scalar.help, labels=["worker"])
        for snap in workers:
            family.add_metric([str(snap["worker"])], float(snap.get(key, 0)))
        yield family
    for key, labelled in LABELLED:
        counts = CounterMetricFamily(labelled.name, labelled.help,
                                     labels=["worker", labelled.label])
        for snap in workers:
            for name, count in sorted(snap.get(key, {}).items()):
                counts.add_metric([str(snap["worker"]), name], count)
        yield counts
    broker_up = GaugeMetricFamily("comet_broker_connected", "1 while the broker "
                                  "subscription is up (absent without a broker).",
                                  labels=["worker"])
    reconnects = CounterMetricFamily("comet_broker_reconnects", "Broker connection "
                                     "attempts after a loss.", labels=["worker"])
    for snap in workers:
        broker = snap.get("broker")
        if broker is not None:
            broker_up.add_metric([str(snap["worker"])], 1.0 if broker["connected"] else 0.0)
            reconnects.add_metric([str(snap["worker"])], broker["reconnects"])
    yield from (broker_up, reconnects)
    for key, spec in HISTOGRAMS:
        histogram = HistogramMetricFamily(spec.name, spec.help, labels=["worker"])
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

    def __init__(self, source: Callable[[], Sequence[Mapping[str, Any]]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from _families(self.source())


def exposition(source: Callable[[], Sequence[Mapping[str, Any]]]) -> tuple[bytes, str]:
    """The Prometheus text of ``source``'s snapshots, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(source))
    return generate_latest(registry), CONTENT_TYPE_LATEST

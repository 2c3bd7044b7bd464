"""A worker's numbers: the one typed snapshot, and what is derived from it.

``WorkerSnapshot`` names every figure once, with its Prometheus series (or how it is
added up across workers) in its annotation; ``CometServer.stats()`` (the JSON stats),
``CometServer.snapshot()`` (the metrics, the status feed, the files other workers
read), the collector's series (``SCALARS``, ``LABELLED``, ``HISTOGRAMS``) and
``sum_snapshots`` are all derived from it.  A snapshot is plain JSON (a ``dict`` at
run time): it also comes back from another worker's file, maybe of an older version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict, get_type_hints


@dataclass(frozen=True)
class Scalar:
    """A Prometheus series, one number per worker (``kind``: "gauge" or "counter")."""

    kind: str
    name: str
    help: str


@dataclass(frozen=True)
class Labelled:
    """A counter per worker and per key of a ``{key: count}`` figure."""

    name: str
    help: str
    label: str


@dataclass(frozen=True)
class HistogramSeries:
    """A Prometheus histogram per worker (its data: ``HistogramData``)."""

    name: str
    help: str


class Largest:
    """Across workers: the largest, not the sum."""


class Apart:
    """Across workers: not added up (an identity, a time, the broker link)."""


def gauge(name: str, help: str) -> Scalar:
    return Scalar("gauge", name, help)


def counter(name: str, help: str) -> Scalar:
    return Scalar("counter", name, help)


class HistogramData(TypedDict):
    bounds: list[float]
    counts: list[int]  # one per bound, and the last for +Inf
    sum: float


class BrokerLink(TypedDict):
    connected: bool
    reconnects: int


class LiveFigures(TypedDict):
    """What the server knows without its metrics: in ``stats()`` and ``snapshot()``."""

    connections: Annotated[int, gauge("comet_connections_open", "Open client connections.")]
    requests_total: Annotated[int, counter("comet_requests",
                                           "Requests read (answered or not yet).")]
    parked: Annotated[int, gauge("comet_parked", "Responses parked (a long-poll, or a stream "
                                 "between chunks).")]
    streaming: Annotated[int, gauge("comet_streams_open", "Streaming responses under way "
                                    "(event streams included).")]
    event_streams: Annotated[int, gauge("comet_event_streams_open",
                                        "Server-Sent Event streams following the hub.")]
    event_streams_cut_slow: Annotated[int, counter(
        "comet_event_streams_cut_slow", "Event streams cut for holding too much unread.")]
    websockets: Annotated[int, gauge("comet_websockets_open",
                                     "WebSocket connections open.")]
    waiters: Annotated[int, gauge("comet_waiters", "Hub waiters (parked long-polls and "
                                  "streams waiting for events).")]
    stopping: Annotated[bool, gauge("comet_draining", "1 once the process drains (SIGTERM).")]
    published_total: Annotated[int, counter("comet_published",
                                            "Events published from this process.")]
    accepting: Annotated[bool, gauge("comet_accepting", "1 while the listener accepts (not "
                                     "at its cap, not draining).")]
    body_bytes_held: Annotated[int, gauge("comet_body_bytes_held",
                                          "Bytes held by unfinished request bodies.")]
    threads: Annotated[int, gauge("comet_threads", "Threads that run application code (0: it "
                                  "runs on the event loop).")]
    queue_refused_total: Annotated[int, counter(
        "comet_queue_refused", "Requests answered 503 because the queue for threads was full.")]
    threads_busy: Annotated[int, gauge("comet_threads_busy",
                                       "Threads running application code now.")]
    queued: Annotated[int, gauge("comet_queued", "Jobs waiting for a thread (new requests "
                                 "and steps of admitted ones).")]
    uptime_s: Annotated[float, gauge("comet_uptime_seconds",
                                     "Seconds since the server started."), Largest]
    cap_hits: Annotated[dict[str, int], Labelled(
        "comet_connections_rejected", "Connections refused or put off, by cause.", "cause")]
    refused_total: Annotated[dict[str, int], Labelled(
        "comet_requests_refused", "Requests refused while being read (framing, limits), by "
        "status.", "status")]


class WorkerSnapshot(LiveFigures):
    """A worker's numbers for the metrics, the status page and the other workers."""

    worker: Annotated[int, Apart]  # the process id
    accepted_total: Annotated[int, counter("comet_connections_accepted",
                                           "Connections accepted.")]
    time: Annotated[float, Apart]  # when it was taken (time.time())
    delivered_total: Annotated[int, counter("comet_deliveries", "Waiters woken with events, "
                                            "and batches of events handed to event streams.")]
    rss_bytes: Annotated[int, gauge("comet_process_resident_memory_bytes", "Resident memory.")]
    bytes_written: Annotated[int, counter("comet_response_bytes",
                                          "Response body bytes written.")]
    open_fds: Annotated[int, gauge("comet_process_open_fds", "Open file descriptors.")]
    not_delivered: Annotated[int, counter("comet_responses_undelivered", "Responses whose end "
                                          "never reached the client (gone, cut).")]
    loop_lag_last_s: Annotated[float, Largest]  # the latest lag probe
    responses: Annotated[dict[str, int], Labelled("comet_responses",
                                                  "Responses ended, by status class.", "code")]
    request_seconds: Annotated[HistogramData, HistogramSeries(
        "comet_request_duration_seconds", "From a request read to its last byte written.")]
    parked_seconds: Annotated[HistogramData, HistogramSeries("comet_parked_seconds",
                                                             "Time a response spent parked.")]
    fanout_seconds: Annotated[HistogramData, HistogramSeries(
        "comet_fanout_seconds", "From an event's arrival to the last waiter it woke (or the "
        "last event stream it was written to).")]
    loop_lag_seconds: Annotated[HistogramData, HistogramSeries(
        "comet_loop_lag_seconds", "How late a timer fires: the event loop's lag.")]
    queued_seconds: Annotated[HistogramData, HistogramSeries(
        "comet_queued_seconds", "How long application work waited for a thread.")]
    broker: Annotated[BrokerLink | None, Apart]  # None: no broker


class ServerStats(LiveFigures):
    """The JSON stats (``/_comet/stats``): the live figures, the connections by state,
    the signal windows open and the caps in force."""

    connections_by_state: dict[str, int]
    signal_windows_open: int
    caps: dict[str, float]


def _annotations() -> dict[str, tuple[Any, ...]]:
    hints = get_type_hints(WorkerSnapshot, include_extras=True)
    return {name: getattr(hint, "__metadata__", ()) for name, hint in hints.items()}


FIELDS: dict[str, tuple[Any, ...]] = _annotations()  # every field, in order, and its marks


def _marked(kind: type) -> tuple[tuple[str, Any], ...]:
    return tuple((key, mark) for key, marks in FIELDS.items()
                 for mark in marks if isinstance(mark, kind))


SCALARS: tuple[tuple[str, Scalar], ...] = _marked(Scalar)
LABELLED: tuple[tuple[str, Labelled], ...] = _marked(Labelled)
HISTOGRAMS: tuple[tuple[str, HistogramSeries], ...] = _marked(HistogramSeries)
_APART = frozenset(key for key, marks in FIELDS.items() if Apart in marks)
_LARGEST = frozenset(key for key, marks in FIELDS.items() if Largest in marks)


def sum_snapshots(snapshots: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every worker's numbers added up (histograms bucket by bucket, ``{key: count}``
    figures key by key): the totals a status page shows.  Gauges such as ``accepting``
    become counts of workers; the figures marked ``Largest`` are the largest."""
    total: dict[str, Any] = {}
    for snap in snapshots:
        for key, value in snap.items():
            if key in _APART or key not in FIELDS:
                continue
            if key in _LARGEST:
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

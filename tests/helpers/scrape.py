"""Read a comet server's /metrics with prometheus-client's own parser."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.proc import HOST, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Scrape:
    """One scrape: every sample by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: Samples = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def workers(self) -> set[str]:
        return {dict(labels)["worker"] for name, labels in self.samples
                if name == "comet_connections_open"}

    def value(self, name: str, **labels: str) -> float:
        """One sample; without a ``worker`` label, the sum over workers."""
        wanted = set(labels.items())
        found = [v for (n, ls), v in self.samples.items()
                 if n == name and wanted <= ls]
        if not found:
            raise KeyError(f"{name}{labels} not in the scrape")
        return sum(found)

    def per_worker(self, name: str, **labels: str) -> dict[str, float]:
        wanted = set(labels.items())
        return {dict(ls)["worker"]: v for (n, ls), v in self.samples.items()
                if n == name and wanted <= ls}


def scrape(port: int, path: str = "/metrics") -> Scrape:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 200, f"{path}: {resp.status} {body[:200]!r}"
    assert resp.getheader("Content-Type", "").startswith("text/plain; version=")
    return Scrape(body.decode())


def wait_scrape(port: int, predicate: Callable[[Scrape], Any], timeout: float = 10,
                message: str = "metrics") -> Scrape:
    """Scrape until ``predicate`` holds (a worker's file lags up to a second)."""
    seen: list[Scrape] = []

    def check() -> Scrape | None:
        got = scrape(port)
        seen[:] = [got]
        return got if predicate(got) else None

    try:
        return wait_until(check, timeout, message, interval=0.05)
    except AssertionError:
        last = seen[-1].text if seen else ""
        raise AssertionError(f"{message}: not reached; last scrape:\n{last[:3000]}") from None

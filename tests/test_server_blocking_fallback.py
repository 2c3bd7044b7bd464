"""Comet responses under Django's test client: no comet server, so waits block."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from django.test import Client

from comet_server import get_hub, publish

DEMO_BODY = (b"First content<br /> stage1<br /> stage2<br /> stage3<br /> "
             b"last_stage4<br /> ")


def test_demo_streams_blocking_under_the_test_client() -> None:
    """The same demo view works without runcomet: the thread sleeps between chunks."""
    t0 = time.monotonic()
    response = Client().get("/demo/")
    assert response.status_code == 200
    assert response.streaming
    chunks = list(response.streaming_content)
    elapsed = time.monotonic() - t0
    assert b"".join(chunks) == DEMO_BODY
    assert len(chunks) == 5
    assert 3.5 < elapsed < 8, elapsed


@pytest.mark.urls("tests.serverapp.urls")
def test_wait_for_events_is_woken_by_publish_from_another_thread() -> None:
    """A long-poll blocks its thread until a publish from another thread wakes it."""
    channel = f"blocking-{uuid.uuid4().hex[:12]}"
    hub = get_hub()
    base = hub.waiting()  # the hub is process-wide: count relative to now
    seen_waiting: list[int] = []

    def publish_later() -> None:
        seen_waiting.append(hub.waiting())
        publish(channel, {"from": "timer"}, cursor=1)

    timer = threading.Timer(0.5, publish_later)
    t0 = time.monotonic()
    timer.start()
    try:
        response = Client().get(f"/wait/{channel}?after=0&timeout=20")
        body = b"".join(response.streaming_content)
    finally:
        timer.cancel()
    elapsed = time.monotonic() - t0
    assert response.status_code == 200
    assert json.loads(body) == {"events": [{"cursor": 1, "payload": {"from": "timer"}}],
                                "after": 0}
    assert seen_waiting == [base + 1]  # it was waiting, not answered from history
    assert 0.4 < elapsed < 10, elapsed
    assert hub.waiting() == base


@pytest.mark.urls("tests.serverapp.urls")
def test_wait_for_events_times_out_under_the_test_client() -> None:
    """Without a publish the blocking long-poll ends at its timeout with no events."""
    channel = f"blocking-timeout-{uuid.uuid4().hex[:12]}"
    base = get_hub().waiting()
    t0 = time.monotonic()
    response = Client().get(f"/wait/{channel}?after=3&timeout=0.3")
    body = b"".join(response.streaming_content)
    assert json.loads(body) == {"events": [], "after": 3}
    assert 0.25 < time.monotonic() - t0 < 5
    assert get_hub().waiting() == base  # the timed-out waiter was removed

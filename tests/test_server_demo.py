"""The seed demo on the real server: five chunks a second apart, nobody else waits."""

from __future__ import annotations

import threading
import time

import requests

from tests.helpers.http import build_request, connect, read_chunk, read_head
from tests.helpers.proc import ServerProcess

DEMO_CHUNKS = [b"First content<br /> ", b"stage1<br /> ", b"stage2<br /> ",
               b"stage3<br /> ", b"last_stage4<br /> "]


def _hello_until(stop: threading.Event, port: int, latencies: list[float],
                 errors: list[BaseException]) -> None:
    """Time /hello requests (fresh connections) until told to stop."""
    try:
        while not stop.is_set():
            t0 = time.monotonic()
            response = requests.get(f"http://127.0.0.1:{port}/hello", timeout=10)
            latencies.append(time.monotonic() - t0)
            assert response.status_code == 200 and response.content == b"hello"
            stop.wait(0.1)  # pacing, not synchronisation
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)


def test_demo_sends_five_chunks_a_second_apart_while_others_are_served(
        comet: ServerProcess) -> None:
    """The demo is the seed use case: parked between chunks, not holding the server."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    helper = threading.Thread(target=_hello_until, args=(stop, comet.port, latencies, errors))
    with connect(comet.port) as sock, sock.makefile("rb") as reader:
        t0 = time.monotonic()
        sock.sendall(build_request("GET", "/demo/"))
        response = read_head(reader)
        assert response.status == 200
        assert response.header("Transfer-Encoding") == "chunked"
        assert response.header("Content-Length") is None
        first = read_chunk(reader, response)
        assert first == DEMO_CHUNKS[0]
        helper.start()  # the demo is mid-stream now
        try:
            while read_chunk(reader, response) is not None:
                pass
        finally:
            stop.set()
            helper.join(15)
        total = time.monotonic() - t0
    assert not errors, errors
    assert response.complete, "no 0-chunk terminator"
    assert response.chunks == DEMO_CHUNKS
    assert response.raw_chunk_sizes == [b"%x\r\n" % len(c) for c in DEMO_CHUNKS] + [b"0\r\n"]
    gaps = [b - a for a, b in zip(response.chunk_times, response.chunk_times[1:], strict=False)]
    assert all(0.5 < gap < 2.5 for gap in gaps), gaps
    assert 3.5 < total < 8, total
    assert len(latencies) >= 10, latencies  # /hello was answered throughout the demo
    assert max(latencies) < 0.5, latencies


def test_concurrent_demos_run_in_parallel(comet: ServerProcess) -> None:
    """Ten demos at once take about as long as one: waits park, they do not block."""
    socks = [connect(comet.port) for _ in range(10)]
    try:
        t0 = time.monotonic()
        for sock in socks:
            sock.sendall(build_request("GET", "/demo/"))
        for sock in socks:
            with sock.makefile("rb") as reader:
                response = read_head(reader)
                while read_chunk(reader, response) is not None:
                    pass
                assert response.complete and response.chunks == DEMO_CHUNKS
        elapsed = time.monotonic() - t0
    finally:
        for sock in socks:
            sock.close()
    assert 3.5 < elapsed < 8, elapsed

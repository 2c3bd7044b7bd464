"""SIGTERM with parked clients: answer them so they re-poll, then exit 0 promptly."""

from __future__ import annotations

import signal
import time

import pytest

from tests.helpers.http import build_request, connect, read_chunk, read_head, read_response

DEMO_BODY = (b"First content<br /> stage1<br /> stage2<br /> stage3<br /> "
             b"last_stage4<br /> ")


def test_sigterm_answers_parked_clients_and_exits_zero(start_server) -> None:
    """20 long-polls get complete empty answers, a demo stream ends, the process exits 0
    within 5 s, and nobody can connect afterwards."""
    server = start_server()
    polls = [connect(server.port) for _ in range(20)]
    for sock in polls:
        sock.sendall(build_request("GET", "/wait/shutdown?after=0&timeout=60"))
    demo = connect(server.port)
    demo.sendall(build_request("GET", "/demo/"))
    demo_reader = demo.makefile("rb")
    try:
        demo_response = read_head(demo_reader)
        assert read_chunk(demo_reader, demo_response) == b"First content<br /> "
        server.wait_stats(lambda s: s["parked"] == 21 and s["streaming"] == 1,
                          message="20 polls and a demo parked")
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        for sock in polls:
            with sock.makefile("rb") as reader:
                response = read_response(reader)
            assert response.status == 200 and response.complete
            assert response.json() == {"events": [], "after": 0}
        while read_chunk(demo_reader, demo_response) is not None:
            pass
        assert DEMO_BODY.startswith(demo_response.body)  # a prefix, never garbage
        code = server.proc.wait(timeout=max(0.1, 5 - (time.monotonic() - t0)))
        assert time.monotonic() - t0 < 5
        assert code == 0, server.stderr()[-3000:]
    finally:
        demo_reader.close()
        for sock in [*polls, demo]:
            sock.close()
    with pytest.raises(ConnectionRefusedError):
        connect(server.port, timeout=2).close()
    assert "Traceback" not in server.stderr()


def test_sigterm_when_idle_exits_zero_at_once(start_server) -> None:
    """With nothing parked the server leaves without using its grace period."""
    server = start_server("--shutdown-grace", "30")
    t0 = time.monotonic()
    assert server.terminate(timeout=5) == 0
    assert time.monotonic() - t0 < 3


def test_sigterm_ends_an_open_event_stream_promptly(start_server) -> None:
    """An open /stream (the chat's push channel) must not keep the server from exiting."""
    server = start_server("--shutdown-grace", "1")
    with connect(server.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", "/stream/busy?duration=8"))
        response = read_head(reader)
        assert read_chunk(reader, response) == b"open\n"
        server.wait_stats(lambda s: s["streaming"] == 1, message="the stream")
        t0 = time.monotonic()
        assert server.terminate(timeout=4) == 0
        assert time.monotonic() - t0 < 4
        while read_chunk(reader, response) is not None:
            pass
        assert response.complete  # ended with the 0-chunk: the client just reconnects

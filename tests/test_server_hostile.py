"""Hostile and broken clients against a real server: slow heads and bodies, connection
and descriptor exhaustion, memory held by bodies, clients vanishing while parked, and
drains that answer every parked client (verified by the clients themselves)."""

from __future__ import annotations

import os
import resource
import selectors
import signal
import socket
import struct
import time
from pathlib import Path

import pytest

from tests.helpers.http import build_request, connect, is_closed, read_response
from tests.helpers.proc import (
    PYTHON,
    SERVER_ENV,
    ServerProcess,
    runcomet_argv,
    wait_until,
)


@pytest.fixture(autouse=True, scope="module")
def enough_descriptors() -> None:
    """The tests open thousands of client sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def server_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a crashed client or a middlebox does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def answers(socks: list[socket.socket], timeout: float) -> list[bytes]:
    """Read every socket to EOF (all at once, with one selector); the raw bytes each got."""
    received = {s.fileno(): b"" for s in socks}
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    open_count = len(socks)
    while open_count and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            try:
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
            except ConnectionError:
                data = b""
            if data:
                received[key.fd] += data
            else:
                selector.unregister(key.fileobj)
                open_count -= 1
    selector.close()
    return [received[s.fileno()] for s in socks]


def complete_200(raw: bytes) -> bool:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 ") or not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return len(body) == int(value)
    return False


# -- slow clients --------------------------------------------------------------------


def test_slowloris_heads_are_cut_at_the_head_deadline(start_server) -> None:
    """Clients that trickle a request head are closed by the head deadline (a whole head
    in --head-timeout), each with a 408, and count in the stats meanwhile."""
    server = start_server("--head-timeout", "1", "--no-access-log")
    slow = [connect(server.port) for _ in range(200)]
    t0 = time.monotonic()
    for sock in slow:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHo")
    stats = server.wait_stats(lambda s: s["connections"] >= 200, message="200 connections")
    assert stats["connections_by_state"].get("reading", 0) >= 200
    # Keep trickling: each byte would have reset a per-read timeout.
    while time.monotonic() - t0 < 0.8:
        for sock in slow:
            sock.sendall(b"s")
        time.sleep(0.1)
    got = answers(slow, timeout=5)
    elapsed = time.monotonic() - t0
    assert all(raw.startswith(b"HTTP/1.1 408 ") for raw in got), got[:3]
    assert elapsed < 3.5
    server.wait_stats(lambda s: s["connections"] <= 1, message="the slow clients gone")
    for sock in slow:
        sock.close()


def test_a_body_below_the_minimum_rate_is_cut(start_server) -> None:
    """A body that stops arriving is not a reason to hold a slot for ever."""
    server = start_server("--head-timeout", "1", "--min-body-rate", "1000")
    with connect(server.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("POST", "/echo", headers={"Content-Length": "100000"})
                     + b"x" * 10)
        t0 = time.monotonic()
        response = read_response(reader)
        assert response.status == 408
        assert time.monotonic() - t0 < 4
        assert is_closed(sock)


# -- connection caps and descriptors --------------------------------------------------


def test_at_the_connection_cap_the_listener_pauses_and_resumes(start_server) -> None:
    """With --max-connections N, the N+1th client waits in the backlog (no busy loop, no
    error) and is served as soon as one of the N closes."""
    server = start_server("--max-connections", "20", "--max-connections-per-client", "0")
    held = [connect(server.port) for _ in range(20)]
    for sock in held:  # all twenty accepted and served
        sock.sendall(build_request("GET", "/hello"))
        assert read_response(sock.makefile("rb")).body == b"hello"
    extra = connect(server.port)
    extra.sendall(build_request("GET", "/hello"))
    assert not is_closed(extra, timeout=0.5)  # accepted by the kernel, not by us: no answer
    cpu0 = server_cpu_seconds(server.pid)
    time.sleep(0.5)  # measuring CPU over a span at the cap
    assert server_cpu_seconds(server.pid) - cpu0 < 0.2  # paused, not spinning
    held.pop().close()
    with extra.makefile("rb") as reader:
        assert read_response(reader).body == b"hello"
    for sock in held:
        sock.close()
    stats = server.wait_stats(lambda s: s["cap_hits"]["max_connections"] >= 1)
    assert stats["caps"]["max_connections"] == 20


def hello_served(port: int) -> bool:
    with connect(port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", "/hello"))
        return read_response(reader).status == 200


def test_a_client_over_its_own_cap_gets_503(start_server) -> None:
    server = start_server("--max-connections-per-client", "5")
    held = [connect(server.port) for _ in range(5)]
    for sock in held:  # make sure all five are accepted before the sixth
        sock.sendall(build_request("GET", "/hello"))
        assert read_response(sock.makefile("rb")).status == 200
    with connect(server.port) as sixth, sixth.makefile("rb") as reader:
        assert read_response(reader).status == 503
    for sock in held:
        sock.close()
    wait_until(lambda: hello_served(server.port), 5, message="a slot freed")


def test_behind_a_trusted_proxy_the_cap_counts_the_forwarded_client(start_server) -> None:
    """nginx pools its sockets, so behind it the per-client cap counts requests in flight
    per address X-Forwarded-For names, and REMOTE_ADDR is that address; an untrusted
    peer's X-Forwarded-For is ignored."""
    server = start_server("--forwarded-allow-ips", "127.0.0.1",
                          "--max-connections-per-client", "2")

    def poll(client: str) -> socket.socket:
        sock = connect(server.port)
        sock.sendall(build_request("GET", "/wait/proxied?after=0&timeout=30",
                                   headers={"X-Forwarded-For": f"198.51.100.9, {client}"}))
        return sock

    parked = [poll("203.0.113.7"), poll("203.0.113.7"), poll("203.0.113.8")]
    server.wait_stats(lambda s: s["parked"] == 3, message="three parked")
    with poll("203.0.113.7") as third, third.makefile("rb") as reader:
        assert read_response(reader).status == 503
    with connect(server.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", "/echo", headers={"X-Forwarded-For": "203.0.113.9"}))
        assert read_response(reader).json()["meta"]["REMOTE_ADDR"] == "203.0.113.9"
    for sock in parked:
        sock.close()
    server.wait_stats(lambda s: s["parked"] == 0, message="the polls gone")
    with poll("203.0.113.7") as again:  # the slots were given back
        server.wait_stats(lambda s: s["parked"] == 1, message="parked again")
        assert not is_closed(again, timeout=0.2)


def test_an_untrusted_peer_cannot_name_another_client(start_server) -> None:
    server = start_server("--forwarded-allow-ips", "192.0.2.1")
    with connect(server.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", "/echo", headers={"X-Forwarded-For": "203.0.113.7"}))
        assert read_response(reader).json()["meta"]["REMOTE_ADDR"] == "127.0.0.1"


def test_a_trusted_proxy_names_the_scheme(start_server) -> None:
    server = start_server("--forwarded-allow-ips", "127.0.0.1")
    with connect(server.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", "/echo", headers={
            "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}))
        meta = read_response(reader).json()["meta"]
    assert meta["wsgi.url_scheme"] == "https"
    assert meta["REMOTE_ADDR"] == "203.0.113.9"


@pytest.mark.parametrize("path", ["/metrics", "/_comet/stats"])
def test_forwarding_headers_from_an_untrusted_peer_are_never_loopback(start_server,
                                                                      path: str) -> None:
    """Fail closed: behind a proxy on the same machine whose operator forgot
    --forwarded-allow-ips, the proxy's loopback address must not open the operator's
    endpoints to the world."""
    server = start_server()
    with connect(server.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", path, headers={"X-Forwarded-For": "203.0.113.9"}))
        assert read_response(reader).status == 403
    with connect(server.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", path))
        assert read_response(reader).status == 200  # a loopback client without them


def test_one_address_cannot_hold_every_connection_by_default(start_server) -> None:
    """With no option given, one address past the per-client default gets 503 while
    another address is still served; the default shows in the stats' caps."""
    server = start_server("--no-access-log")
    cap = server.stats()["caps"]["max_connections_per_client"]
    assert 1000 <= cap <= 4096
    held = []
    for _ in range(cap):
        held.append(connect(server.port, source="127.0.0.2"))
    server.wait_stats(lambda s: s["connections"] >= cap, timeout=20,
                      message=f"{cap} connections from 127.0.0.2")
    with connect(server.port, source="127.0.0.2") as extra, extra.makefile("rb") as reader:
        assert read_response(reader).status == 503
    with connect(server.port, source="127.0.0.3") as other, other.makefile("rb") as reader:
        other.sendall(build_request("GET", "/hello"))
        assert read_response(reader).status == 200
    for sock in held:
        sock.close()


def test_an_http09_request_line_is_refused_at_once(start_server) -> None:
    """``GET /`` and a line end: HTTP/0.9, answered 400 and closed at once, not held
    until the head deadline."""
    server = start_server("--head-timeout", "10")
    for line in (b"GET /\r\n", b"GET /hello\n"):
        with connect(server.port, timeout=3) as sock, sock.makefile("rb") as reader:
            sock.sendall(line)
            assert read_response(reader).status == 400
            assert is_closed(sock, timeout=1)


def test_out_of_descriptors_the_server_rests_instead_of_spinning(tmp_path: Path) -> None:
    """At the process's descriptor limit (EMFILE) accept() fails: the listener pauses,
    one log line per second at most, little CPU; it serves again once fds free up."""
    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    argv = runcomet_argv("--max-connections", "100000", "--no-access-log")
    server = ServerProcess(argv, tmp_path, env=SERVER_ENV, preexec_fn=low_fd_limit)
    try:
        server.start()
        clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(120)]
        wait_until(lambda: "Too many open files" in server.stderr(), 10,
                   message="the server to hit EMFILE")
        cpu0 = server_cpu_seconds(server.pid)
        log0 = len(server.stderr())
        time.sleep(2)  # measuring what it does at the limit, over a fixed span
        cpu = server_cpu_seconds(server.pid) - cpu0
        logged = server.stderr()[log0:]
        assert cpu < 0.5, f"{cpu:.2f}s of CPU in 2 s at EMFILE"
        assert logged.count("\n") <= 4, logged[-2000:]
        for sock in clients:
            sock.close()
        with connect(server.port) as sock, sock.makefile("rb") as reader:
            sock.sendall(build_request("GET", "/hello"))
            assert read_response(reader).body == b"hello"
    finally:
        server.terminate()


# -- memory ---------------------------------------------------------------------------


def test_unfinished_bodies_are_capped_across_connections(start_server) -> None:
    """Bytes held by bodies still arriving are bounded for the whole process: past
    --max-body-bytes-total the next body is refused with 503."""
    server = start_server("--max-body-size", "100000", "--max-body-bytes-total", "200000")
    head = build_request("POST", "/echo", headers={"Content-Length": "100000"})
    first, second = connect(server.port), connect(server.port)
    first.sendall(head + b"x" * 90000)
    second.sendall(head + b"x" * 90000)
    server.wait_stats(lambda s: s["body_bytes_held"] >= 180000, message="180 kB held")
    with connect(server.port) as third, third.makefile("rb") as reader:
        third.sendall(head + b"x" * 90000)
        assert read_response(reader).status == 503
    first.sendall(b"x" * 10000)  # the first finishes: served, and its bytes released
    with first.makefile("rb") as reader:
        assert read_response(reader).json()["body_len"] == 100000
    second.close()
    first.close()
    server.wait_stats(lambda s: s["body_bytes_held"] == 0, message="nothing held")


def test_a_parked_client_that_resets_with_a_full_buffer_is_noticed(start_server) -> None:
    """A parked client floods pipelined bytes (the server reads none of them) and then
    resets: the wait ends at once and the access log says the client was gone, not 200."""
    server = start_server()
    sock = connect(server.port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
    sock.sendall(build_request("GET", "/wait/flood-reset?after=0&timeout=60"))
    server.wait_stats(lambda s: s["parked"] == 1, message="the long-poll parked")
    sock.setblocking(False)
    sent = 0
    try:
        while sent < 64 << 20:
            sent += sock.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" * 1000)
    except BlockingIOError:
        pass  # both kernels' buffers are full: the server is not reading
    reset(sock)
    server.wait_stats(lambda s: s["parked"] == 0 and s["connections"] <= 1, timeout=3,
                      message="the reset noticed while parked")
    wait_until(lambda: "/wait/flood-reset" in server.stderr(), 3, message="the log line")
    line = next(x for x in server.stderr().splitlines() if "/wait/flood-reset" in x)
    assert '" 499 ' in line and "client gone" in line, line


# -- drain ----------------------------------------------------------------------------


def test_drain_answers_thousands_of_parked_polls_and_ends_streams(start_server) -> None:
    """SIGTERM: every parked long-poll gets a complete answer (as its client sees it), an
    open stream ends with its last chunk, the process exits 0 promptly."""
    count = 3000
    server = start_server("--no-access-log", "--max-connections-per-client", "0")
    polls = [connect(server.port) for _ in range(count)]
    request = build_request("GET", "/wait/drain?after=0&timeout=60")
    for sock in polls:
        sock.sendall(request)
    stream = connect(server.port)
    stream.sendall(build_request("GET", "/stream/drain-stream?duration=60"))
    server.wait_stats(lambda s: s["parked"] == count + 1, timeout=20,
                      message=f"{count} polls and a stream parked")
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    got = answers([*polls, stream], timeout=10)
    code = server.proc.wait(timeout=10)
    elapsed = time.monotonic() - t0
    assert code == 0, server.stderr()[-3000:]
    answered = sum(complete_200(raw) for raw in got[:count])
    assert answered == count, f"{answered}/{count} answered; first bad: " \
        f"{next(r for r in got[:count] if not complete_200(r))!r}"
    assert got[count].endswith(b"\r\n0\r\n\r\n"), got[count][-200:]  # the last chunk
    assert elapsed < 4, f"drain took {elapsed:.1f}s"
    for sock in [*polls, stream]:
        sock.close()


def test_drain_under_the_autoreloader_answers_parked_polls(tmp_path: Path) -> None:
    """`make run` (DEBUG, autoreloader): Ctrl-C reaches only the reloader's parent; the
    serving child drains, so parked long-polls are answered, and everything exits 0."""
    argv = [PYTHON, "manage.py", "runcomet", "127.0.0.1:0"]  # with the reloader
    server = ServerProcess(argv, tmp_path, env={**SERVER_ENV, "DJANGO_DEBUG": "1"})
    try:
        server.start()
        polls = [connect(server.port) for _ in range(50)]
        for sock in polls:
            sock.sendall(build_request("GET", "/wait/reload-drain?after=0&timeout=60"))
        server.wait_stats(lambda s: s["parked"] == 50, message="50 parked")
        server.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the parent
        got = answers(polls, timeout=10)
        assert sum(complete_200(raw) for raw in got) == 50
        assert server.proc.wait(timeout=10) == 0
    finally:
        server.kill()

"""WebSocket on a real runcomet server, black-box, with an independent client (the
``websockets`` library's, sync API) and raw sockets where the bytes matter.

The views are tests/serverapp's ``/ws/<channel>`` (follows a channel, echoes, raises
on ``boom``) and the demo's ``/demo/echo``.  A socket's first message (``ready``) is
written in the same loop turn as it starts following its channel, so once a client
has read it a publish is sure to reach it.  Nothing sleeps a fixed time.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection, connect

from tests.conftest import StartServer
from tests.helpers import nginx
from tests.helpers.http import build_request, read_response
from tests.helpers.http import connect as tcp_connect
from tests.helpers.proc import ServerProcess, wait_until
from tests.test_server_longpoll import new_channel, publish

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
HANDSHAKE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": KEY,
             "Sec-WebSocket-Version": "13"}


def ws_url(server: ServerProcess, path: str) -> str:
    return server.url(path).replace("http://", "ws://")


@contextmanager
def socket_to(server: ServerProcess, path: str, **options: object) -> Iterator[ClientConnection]:
    with connect(ws_url(server, path), open_timeout=10, close_timeout=5,
                 **options) as client:  # type: ignore[arg-type]
        yield client


@contextmanager
def following(server: ServerProcess, channel: str, query: str = "",
              **options: object) -> Iterator[ClientConnection]:
    """A socket on ``/ws/<channel>`` whose ``ready`` has been read (it follows now)."""
    with socket_to(server, f"/ws/{channel}{query}", **options) as client:
        assert json.loads(client.recv(timeout=10)) == {"ready": True}
        yield client


def closed_with(client: ClientConnection) -> int | None:
    """The close code the server sent (None: none)."""
    close = client.protocol.close_rcvd
    return None if close is None else close.code


def raw_handshake(server: ServerProcess, headers: dict[str, str], *, method: str = "GET",
                  version: str = "HTTP/1.1", path: str = "/demo/echo") -> tuple[int, str, str]:
    """(status, body, Sec-WebSocket-Version header) of a handshake on a raw socket."""
    with tcp_connect(server.port) as sock:
        sock.sendall(build_request(method, path, version=version, headers=headers))
        response = read_response(sock.makefile("rb"))
    return (response.status, response.body.decode(),
            response.header("Sec-WebSocket-Version") or "")


# -- the handshake ------------------------------------------------------------------------


def test_a_valid_handshake_switches_protocols(comet: ServerProcess) -> None:
    with tcp_connect(comet.port) as sock:
        sock.sendall(build_request("GET", "/demo/echo", headers=HANDSHAKE))
        head = sock.makefile("rb").readline()
    assert head.startswith(b"HTTP/1.1 101 ")


@pytest.mark.parametrize(("change", "status", "words"), [
    ({"Sec-WebSocket-Version": "12"}, 426, "version 13"),
    ({"Sec-WebSocket-Key": "abc"}, 400, "Sec-WebSocket-Key"),
    ({"Sec-WebSocket-Key": None}, 400, "Sec-WebSocket-Key"),
    ({"Connection": None}, 426, "Connection"),
    ({"Connection": "keep-alive"}, 426, "Connection"),
])
def test_a_bad_handshake_gets_400_or_426_with_a_reason(
        comet: ServerProcess, change: dict[str, str | None], status: int, words: str) -> None:
    headers = {**HANDSHAKE, **change}
    sent = {k: v for k, v in headers.items() if v is not None}
    got, body, version = raw_handshake(comet, sent)
    assert got == status
    assert words in body
    if status == 426 and "Sec-WebSocket-Version" in change:
        assert version == "13"  # RFC 6455 §4.4: the versions the server speaks


def test_a_handshake_must_be_a_get_over_http_1_1(comet: ServerProcess) -> None:
    status, body, _ = raw_handshake(comet, HANDSHAKE, version="HTTP/1.0")
    assert (status, "HTTP/1.1" in body) == (400, True)
    status, body, _ = raw_handshake(comet, HANDSHAKE, method="POST")
    assert (status, "GET" in body) == (400, True)


def test_a_plain_get_to_a_socket_url_gets_400(comet: ServerProcess) -> None:
    with tcp_connect(comet.port) as sock:
        sock.sendall(build_request("GET", "/demo/echo"))
        response = read_response(sock.makefile("rb"))
    assert response.status == 400 and b"WebSocket" in response.body


def test_without_the_comet_server_the_upgrade_is_refused_with_501() -> None:
    """Under runserver or gunicorn (here Django's test client: no comet server) the
    view answers 501 with why, and a client falls back to the event stream."""
    response = Client().get("/demo/echo", HTTP_UPGRADE="websocket", HTTP_CONNECTION="Upgrade")
    assert response.status_code == 501
    assert b"runcomet" in response.content


def test_a_foreign_origin_gets_403(comet: ServerProcess) -> None:
    own = comet.url("").rstrip("/")
    with socket_to(comet, "/demo/echo", origin=own) as client:
        client.send("same site")
        assert client.recv(timeout=10) == "same site"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(comet, "/demo/echo"), origin="http://evil.example",  # type: ignore[arg-type]
                open_timeout=10)
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(comet, "/demo/echo"), origin="null",  # type: ignore[arg-type]
                open_timeout=10)
    assert refused.value.response.status_code == 403


# -- messages, pings, closes -------------------------------------------------------------


def test_echo_text_binary_and_ping_pong(comet: ServerProcess) -> None:
    with socket_to(comet, "/demo/echo") as client:
        client.send("héllo")
        assert client.recv(timeout=10) == "héllo"
        client.send(b"\x00\xff")
        assert client.recv(timeout=10) == b"\x00\xff"
        assert client.ping(b"are you there").wait(10)
        client.send("x" * 100_000)
        assert client.recv(timeout=10) == "x" * 100_000


def test_messages_are_handled_in_order(comet: ServerProcess) -> None:
    channel = new_channel("order")
    with following(comet, channel) as client:
        for i in range(50):
            client.send(f"m{i}")
        assert [client.recv(timeout=10) for _ in range(50)] == [f"echo:m{i}" for i in range(50)]


def test_the_client_closes_with_1000(comet: ServerProcess) -> None:
    with socket_to(comet, "/demo/echo") as client:
        client.close(1000, "bye")
        assert closed_with(client) == 1000


def test_an_exception_in_on_message_closes_with_1011(comet: ServerProcess) -> None:
    channel = new_channel("boom")
    with following(comet, channel) as client:
        client.send("boom")
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=10)
        assert closed_with(client) == 1011
    assert "boom in on_message" in wait_until(
        lambda: "boom in on_message" in comet.stderr() and comet.stderr(), 5, "the log")


def test_the_application_closes_with_its_code(comet: ServerProcess) -> None:
    with following(comet, new_channel("close")) as client:
        client.send("close:4001")
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=10)
        assert closed_with(client) == 4001


def test_a_message_over_the_bound_closes_with_1009(comet: ServerProcess) -> None:
    with socket_to(comet, "/demo/echo", max_size=None) as client:
        client.send("x" * ((1 << 20) + 1))
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=10)
        assert closed_with(client) == 1009


def test_invalid_utf8_closes_with_1007_at_the_first_bad_fragment(comet: ServerProcess) -> None:
    """A fragmented text whose first fragment is not UTF-8 fails before it ends."""
    with tcp_connect(comet.port) as sock:
        sock.sendall(build_request("GET", "/demo/echo", headers=HANDSHAKE))
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"HTTP/1.1 101 ")
        while reader.readline() not in (b"\r\n", b""):
            pass
        sock.sendall(Frame(Opcode.TEXT, b"ok \xff\xfe", fin=False).serialize(mask=True))
        header = reader.read(2)
        assert header[0] == 0x88  # a close frame, before the message's end was sent
        payload = reader.read(header[1] & 0x7F)
        assert int.from_bytes(payload[:2], "big") == 1007


# -- events out ---------------------------------------------------------------------------


def test_events_reach_every_socket_once_in_order(comet: ServerProcess) -> None:
    channel = new_channel("fan")
    with ExitStack() as stack:
        clients = [stack.enter_context(following(comet, channel)) for _ in range(3)]
        for cursor in range(1, 6):
            publish(comet, channel, {"n": cursor}, cursor=cursor)
        publish(comet, channel, {"skip": True})
        publish(comet, channel, {"signal": 1})
        for client in clients:
            got = [json.loads(client.recv(timeout=10)) for _ in range(6)]
            assert got == [{"cursor": c, "payload": {"n": c}} for c in range(1, 6)] + [
                {"cursor": None, "payload": {"signal": 1}}]


def test_a_socket_resumes_without_loss_or_duplicates(comet: ServerProcess) -> None:
    """``?after=`` with what the store replays and what the hub's history holds: each
    event past the cursor once, in order, then the live ones."""
    channel = new_channel("resume")
    for cursor in range(1, 6):
        publish(comet, channel, {"n": cursor}, cursor=cursor)
    with following(comet, channel, "?after=1&replay=2") as client:  # the store has 2, 3
        publish(comet, channel, {"n": 6}, cursor=6)
        got = [json.loads(client.recv(timeout=10)) for _ in range(5)]
    assert [m["cursor"] for m in got] == [2, 3, 4, 5, 6]
    assert got[0]["payload"] == {"replayed": 2}


def test_a_post_over_the_socket_is_published_to_everyone(comet: ServerProcess) -> None:
    channel = new_channel("pub")
    with following(comet, channel) as one, following(comet, channel) as two:
        one.send(f"pub:{channel}:hi")
        for client in (one, two):
            assert json.loads(client.recv(timeout=10))["payload"] == {"text": "hi"}


# -- keepalive, slow readers, drain --------------------------------------------------------


def test_a_quiet_client_is_pinged_and_a_silent_one_dropped(start_server: StartServer) -> None:
    server = start_server("--websocket-ping-interval", "0.3", "--websocket-idle-timeout", "1")
    with socket_to(server, "/demo/echo", ping_interval=None) as client:
        # Twice the idle timeout without a message: the client library answers the
        # server's pings, so the socket stays open.
        with pytest.raises(TimeoutError):
            client.recv(timeout=2)
        client.send("still here?")
        assert client.recv(timeout=5) == "still here?"
    with tcp_connect(server.port) as sock:  # never answers a ping
        sock.sendall(build_request("GET", "/demo/echo", headers=HANDSHAKE))
        sock.settimeout(10)
        data = b""
        started = time.monotonic()
        while chunk := sock.recv(4096):
            data += chunk
        silent_for = time.monotonic() - started
    assert b"\x89\x00" in data  # pinged (an empty ping frame) before being dropped
    assert 0.8 < silent_for < 5
    server.wait_stats(lambda s: s["websockets"] == 0)


def test_a_slow_reader_is_cut_and_memory_stays_flat(start_server: StartServer) -> None:
    server = start_server("--max-stream-buffer", "65536", "--no-access-log")
    channel = new_channel("slow")
    big = "y" * 50_000
    with tcp_connect(server.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(build_request("GET", f"/ws/{channel}", headers=HANDSHAKE))
        server.wait_stats(lambda s: s["websockets"] == 1)
        rss_before = server.rss_kib()
        for _ in range(200):  # 10 MB the client never reads
            publish(server, channel, {"big": big})
            if server.stats()["websockets"] == 0:
                break
        stats = server.wait_stats(lambda s: s["websockets"] == 0)
        assert stats["event_streams_cut_slow"] >= 1
        rss_after = server.rss_kib()
    assert rss_after - rss_before < 8 * 1024, (rss_before, rss_after)


def test_a_drain_closes_every_socket_with_1001(start_server: StartServer) -> None:
    server = start_server()
    channel = new_channel("drain")
    with ExitStack() as stack:
        clients = [stack.enter_context(following(server, channel)) for _ in range(3)]
        server.proc.send_signal(signal.SIGTERM)
        for client in clients:
            with pytest.raises(ConnectionClosed):
                client.recv(timeout=10)
            assert closed_with(client) == 1001
    assert server.proc.wait(timeout=10) == 0


# -- behind nginx ---------------------------------------------------------------------------


class UpgradingNginx(nginx.Nginx):
    """docs/deployment.md's nginx as documented: it passes the Upgrade on."""


class PlainNginx(nginx.Nginx):
    def conf(self) -> str:
        return nginx.without_websocket(super().conf())


def test_through_nginx_with_the_upgrade_lines(comet: ServerProcess, tmp_path) -> None:
    """With docs/websocket.md's ``map $http_upgrade`` lines nginx passes the handshake
    on; without them (README's configuration so far) the Upgrade is dropped and the
    socket URL answers 400, so a page falls back to its event stream (the documented
    configuration, docs/deployment.md's, either way: with the lines added or taken out)."""
    if not nginx.available():
        pytest.skip("nginx is not installed")
    upgrading = UpgradingNginx(tmp_path / "upgrading", comet.port).start()
    plain = PlainNginx(tmp_path / "plain", comet.port).start()
    try:
        with connect(f"ws://127.0.0.1:{upgrading.port}/demo/echo", open_timeout=10) as client:
            client.send("through nginx")
            assert client.recv(timeout=10) == "through nginx"
            assert client.ping().wait(10)
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{plain.port}/demo/echo", open_timeout=10)
        assert refused.value.response.status_code == 400
    finally:
        upgrading.stop()
        plain.stop()

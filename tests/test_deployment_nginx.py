"""The deployment of docs/deployment.md, through a real nginx with the configuration
read from the document: the operator's endpoints stay the operator's, the client
runcomet sees is the real one, and two clients behind nginx count apart.

An "outside" client is this machine's own non-loopback address: nginx listens on it
too, and a client bound to it is what a visitor from the network is to nginx.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.helpers import nginx
from tests.helpers.http import build_request, connect, is_closed, read_response
from tests.helpers.proc import ServerProcess


def outside_address() -> str | None:
    """A non-loopback IPv4 address of this machine, if it has one."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"\binet (\d+\.\d+\.\d+\.\d+)/", out)
    return match.group(1) if match else None


OUTSIDE = outside_address()


@pytest.fixture
def front(tmp_path) -> Iterator:
    """Start nginx with the documented configuration in front of a server."""
    if not nginx.available():
        pytest.skip(f"{nginx.NGINX} is not installed")
    started: list[nginx.Nginx] = []

    def start(server: ServerProcess, *hosts: str) -> nginx.Nginx:
        proxy = nginx.Nginx(tmp_path / f"nginx{len(started)}", server.port,
                            hosts=hosts or ("127.0.0.1",)).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def get(proxy: nginx.Nginx, path: str, *, host: str = "127.0.0.1",
        source: str | None = None, headers: dict[str, str] | None = None):
    with connect(proxy.port, host=host, source=source) as sock, \
            sock.makefile("rb") as reader:
        sock.sendall(build_request("GET", path, headers=headers or {}))
        return read_response(reader)


def test_the_documented_command_trusts_the_proxy() -> None:
    text = nginx.DEPLOYMENT.read_text()
    commands = [line for line in text.splitlines()
                if "manage.py runcomet" in line and "--forwarded-allow-ips" in line]
    assert commands, "docs/deployment.md shows no runcomet command trusting its proxy"


@pytest.mark.skipif(OUTSIDE is None, reason="this machine has no non-loopback address")
def test_metrics_are_refused_to_outside_clients_and_served_to_loopback_ones(
        start_server, front) -> None:
    assert OUTSIDE is not None
    server = start_server("--forwarded-allow-ips", "127.0.0.1")
    proxy = front(server, "127.0.0.1", OUTSIDE)
    for path in ("/metrics", "/_comet/stats"):
        assert get(proxy, path, host=OUTSIDE, source=OUTSIDE).status == 403, path
        # A client cannot talk its way in by naming loopback itself.
        assert get(proxy, path, host=OUTSIDE, source=OUTSIDE,
                   headers={"X-Forwarded-For": "127.0.0.1"}).status == 403, path
        assert get(proxy, path).status == 200, path
    meta = get(proxy, "/echo", host=OUTSIDE, source=OUTSIDE,
               headers={"X-Forwarded-Proto": "https"}).json()["meta"]
    assert meta["REMOTE_ADDR"] == OUTSIDE
    assert meta["wsgi.url_scheme"] == "http"  # nginx's $scheme, not the client's claim


@pytest.mark.skipif(OUTSIDE is None, reason="this machine has no non-loopback address")
def test_a_forgotten_forwarded_allow_ips_leaks_nothing(start_server, front) -> None:
    """Fail closed: nginx on the same machine, runcomet not told to trust it."""
    assert OUTSIDE is not None
    server = start_server()
    proxy = front(server, "127.0.0.1", OUTSIDE)
    for path in ("/metrics", "/_comet/stats"):
        assert get(proxy, path, host=OUTSIDE, source=OUTSIDE).status == 403, path
        assert get(proxy, path).status == 403, path  # nginx says who: never loopback
    assert server.stats()["requests_total"] >= 4  # and they did reach runcomet


def test_two_clients_behind_nginx_count_apart(start_server, front) -> None:
    """The per-client cap counts the address nginx names, not nginx's own."""
    server = start_server("--forwarded-allow-ips", "127.0.0.1",
                          "--max-connections-per-client", "2")
    proxy = front(server)
    request = build_request("GET", "/wait/apart?after=0&timeout=30")

    def poll(source: str):
        sock = connect(proxy.port, source=source, timeout=10)
        sock.sendall(request)
        return sock

    held = [poll("127.0.0.2"), poll("127.0.0.2")]
    server.wait_stats(lambda s: s["parked"] == 2, message="two polls of 127.0.0.2")
    with poll("127.0.0.2") as third, third.makefile("rb") as reader:
        response = read_response(reader)
        assert response.status == 503, response.body
    other = poll("127.0.0.3")
    server.wait_stats(lambda s: s["parked"] == 3, message="127.0.0.3 parked too")
    assert not is_closed(other, timeout=0.2)
    for sock in [*held, other]:
        sock.close()

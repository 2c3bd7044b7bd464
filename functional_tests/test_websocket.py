"""The chat over Chromium's own WebSocket: two browsers talk over their sockets (posts
and typing go over them too), the server is killed and restarted mid-conversation
and a message posted meanwhile shows once; behind an nginx that does not pass the
Upgrade (docs/deployment.md's configuration without the ``map $http_upgrade`` lines) the page
falls back to the event stream and still shows every message once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from functional_tests.browser import (
    LIVE,
    open_room,
    status_is,
    type_message,
    until,
    wait_for_message,
)
from functional_tests.server import ChatServer
from functional_tests.test_sse import RECONNECT, assert_each_once_in_order, transport, transport_is
from tests.helpers import nginx
from tests.helpers.nginx import Nginx


def socket_posts(server: ChatServer) -> int:
    """Posts made over HTTP (the access log's POST lines): none while pages chat over
    their sockets."""
    return (server.stdout() + server.stderr()).count('"POST /rooms/lobby/messages')


def test_two_browsers_chat_over_websocket_through_a_server_kill(
        own_server: ChatServer, browser: WebDriver, other_browser: WebDriver) -> None:
    base = own_server.url("")
    ann, bob = browser, other_browser
    open_room(ann, base, "lobby", "ann")
    open_room(bob, base, "lobby", "bob")
    for page in (ann, bob):
        until(page, transport_is("websocket"), "the page did not go live over WebSocket",
              LIVE)
        assert page.find_element("id", "transport").text == "live (WebSocket)"
        page.execute_script("window.notReloaded = true;")
    http_posts = socket_posts(own_server)

    type_message(ann, "hello bob")
    wait_for_message(bob, "hello bob", timeout=LIVE)
    type_message(bob, "hi ann")
    wait_for_message(ann, "hi ann", timeout=LIVE)
    assert socket_posts(own_server) == http_posts, "a post went over HTTP, not the socket"

    own_server.kill()  # no drain: the sockets just break
    for page in (ann, bob):
        until(page, status_is("offline", "Reconnecting…"),
              "#status did not say Reconnecting… when the server died", RECONNECT)
    own_server.post_message("lobby", "posted while the server was dead")
    own_server.start()

    for page in (ann, bob):
        wait_for_message(page, "posted while the server was dead", timeout=RECONNECT)
        until(page, status_is("online"), "#status did not come back online", RECONNECT)
        assert transport(page) == "websocket", "the page left its WebSocket after a restart"
        assert page.execute_script("return window.notReloaded === true;"), \
            "the page reloaded instead of resuming"
    type_message(bob, "after the restart")
    wait_for_message(ann, "after the restart", timeout=LIVE)
    texts = ["hello bob", "hi ann", "posted while the server was dead", "after the restart"]
    for page in (ann, bob):
        assert_each_once_in_order(page, texts)


class PlainNginx(Nginx):
    """docs/deployment.md's nginx without the WebSocket lines (no Upgrade passed on),
    with the browser's Host and port kept (the pages post forms: CSRF checks the
    origin)."""

    def conf(self) -> str:
        return nginx.without_websocket(super().conf()).replace(
            "proxy_set_header Host $host;", "proxy_set_header Host $http_host;")


@pytest.fixture
def plain_proxy(chat_server: ChatServer, tmp_path: Path) -> Iterator[Nginx]:
    if not nginx.available():
        pytest.skip("nginx is not installed")
    proxy = PlainNginx(tmp_path / "nginx", chat_server.port).start()
    yield proxy
    proxy.stop()


def test_behind_a_proxy_without_upgrade_the_page_falls_back_to_sse(
        chat_server: ChatServer, plain_proxy: Nginx, new_room: str,
        browser: WebDriver, other_browser: WebDriver) -> None:
    ann, bob = browser, other_browser
    proxied = f"http://127.0.0.1:{plain_proxy.port}"
    open_room(bob, chat_server.url(""), new_room, "bob")
    until(bob, transport_is("websocket"), "the direct page is not on its WebSocket", LIVE)
    open_room(ann, proxied, new_room, "ann")
    type_message(bob, "while ann connects")
    until(ann, transport_is("sse"), "the page did not fall back to SSE", LIVE)
    assert ann.find_element("id", "transport").text == "live (SSE)"
    wait_for_message(ann, "while ann connects", timeout=LIVE)
    type_message(bob, "from bob over websocket")
    wait_for_message(ann, "from bob over websocket", timeout=LIVE)
    type_message(ann, "from ann over sse")
    wait_for_message(bob, "from ann over sse", timeout=LIVE)
    texts = ["while ann connects", "from bob over websocket", "from ann over sse"]
    for page in (ann, bob):
        assert_each_once_in_order(page, texts)
    # The proxy carried the page's handshake (as a plain GET) and then its stream.
    log = "\n".join(plain_proxy.access_log())
    assert f"/rooms/{new_room}/socket?" in log
    assert f"/rooms/{new_room}/events?after=" in log


class UpgradingNginx(Nginx):
    """docs/deployment.md's nginx as documented, with its ``map $http_upgrade`` lines
    (Host and port kept, as ``PlainNginx``)."""

    def conf(self) -> str:
        return super().conf().replace(
            "proxy_set_header Host $host;", "proxy_set_header Host $http_host;")


def test_through_nginx_with_the_upgrade_lines_the_page_stays_on_websocket(
        chat_server: ChatServer, new_room: str, tmp_path: Path,
        browser: WebDriver, other_browser: WebDriver) -> None:
    if not nginx.available():
        pytest.skip("nginx is not installed")
    proxy = UpgradingNginx(tmp_path / "nginx", chat_server.port).start()
    try:
        ann, bob = browser, other_browser
        open_room(ann, f"http://127.0.0.1:{proxy.port}", new_room, "ann")
        open_room(bob, chat_server.url(""), new_room, "bob")
        for page in (ann, bob):
            until(page, transport_is("websocket"), "the page is not on its WebSocket", LIVE)
        type_message(ann, "through nginx over websocket")
        wait_for_message(bob, "through nginx over websocket", timeout=LIVE)
        type_message(bob, "back to ann")
        wait_for_message(ann, "back to ann", timeout=LIVE)
        for page in (ann, bob):
            assert_each_once_in_order(page, ["through nginx over websocket", "back to ann"])
        # ann's page came through the proxy, so did its socket (a relative URL).
    finally:
        proxy.stop()

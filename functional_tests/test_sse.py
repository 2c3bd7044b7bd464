"""The chat over Chromium's own EventSource: live messages, a server killed and
restarted mid-conversation, a moderator's deletion and streams ending at their
lifetime under the pages, and the fallback to the long-poll behind a buffering proxy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from functional_tests.browser import (
    LIVE,
    ids_of,
    messages,
    open_room,
    status_is,
    type_message,
    until,
    wait_for_message,
)
from functional_tests.server import ChatServer
from functional_tests.test_identity import sign_up, submit
from tests.helpers import nginx
from tests.helpers.nginx import Nginx
from tests.helpers.proc import UNLIMITED_CHAT_ENV

RECONNECT = 30.0  # the stream's retry is 3 s; a restart takes a few more
FALLBACK = 20.0  # the page waits CHAT_STREAM_FIRST_EVENT_SECONDS (5 s) for a first event


def transport(driver: WebDriver) -> str | None:
    return driver.execute_script(
        "var t = document.getElementById('transport');"
        " return t && t.getAttribute('data-transport');")


def transport_is(name: str):
    return lambda driver: transport(driver) == name


def assert_each_once_in_order(driver: WebDriver, texts: list[str]) -> None:
    shown = messages(driver)
    for text in texts:
        assert len(ids_of(driver, text)) == 1, f"{text!r} shown {len(ids_of(driver, text))}x"
    ids = [int(mid) for mid, _author, _text in shown if mid]
    assert ids == sorted(set(ids)), f"messages out of order or repeated: {ids}"


@pytest.fixture
def sse_server(tmp_path: Path) -> Iterator[ChatServer]:
    """A dedicated server whose pages do not try a WebSocket first (CHAT_WEBSOCKET=0):
    these tests are about the event stream itself."""
    server = ChatServer(tmp_path / "db.sqlite3", tmp_path, name="sse",
                        rules={**UNLIMITED_CHAT_ENV, "CHAT_WEBSOCKET": "0"})
    server.migrate()
    server.start()
    yield server
    server.stop()


def test_two_browsers_chat_over_sse_through_a_server_kill(sse_server: ChatServer,
                                                          browser: WebDriver,
                                                          other_browser: WebDriver) -> None:
    """Messages go both ways over the stream; the server is SIGKILLed, a message is
    stored while it is down, and after the restart both pages show it once (resumed
    with Last-Event-ID, no reload, still on SSE) and the conversation goes on."""
    own_server = sse_server
    base = own_server.url("")
    ann, bob = browser, other_browser
    open_room(ann, base, "lobby", "ann")
    open_room(bob, base, "lobby", "bob")
    for page in (ann, bob):
        until(page, transport_is("sse"), "the page did not go live over EventSource", LIVE)
        assert page.find_element("id", "transport").text == "live (SSE)"
        page.execute_script("window.notReloaded = true;")

    type_message(ann, "hello bob")
    wait_for_message(bob, "hello bob", timeout=LIVE)
    type_message(bob, "hi ann")
    wait_for_message(ann, "hi ann", timeout=LIVE)

    own_server.kill()  # no drain: the streams just break
    for page in (ann, bob):
        until(page, status_is("offline", "Reconnecting…"),
              "#status did not say Reconnecting… when the server died", RECONNECT)
    own_server.post_message("lobby", "posted while the server was dead")
    own_server.start()

    for page in (ann, bob):
        wait_for_message(page, "posted while the server was dead", timeout=RECONNECT)
        until(page, status_is("online"), "#status did not come back online", RECONNECT)
        assert transport(page) == "sse", "the page left EventSource after a restart"
    type_message(bob, "after the restart")
    wait_for_message(ann, "after the restart", timeout=LIVE)
    texts = ["hello bob", "hi ann", "posted while the server was dead", "after the restart"]
    for page in (ann, bob):
        wait_for_message(page, "after the restart")
        assert_each_once_in_order(page, texts)
        assert page.execute_script("return window.notReloaded === true;"), "page reloaded"

    # The lobby follows its own stream: bob's list counts ann's next message live.
    bob.get(base + "/")
    until(bob, transport_is("sse"), "the lobby did not go live over EventSource", LIVE)
    count = lobby_count(bob, "lobby")
    type_message(ann, "counted in the lobby")
    until(bob, lambda d: lobby_count(d, "lobby") == count + 1,
          "the lobby's count did not go up by one over its stream", LIVE)


def lobby_count(driver: WebDriver, slug: str) -> int:
    return int(driver.execute_script(
        "return document.querySelector('li.room[data-slug=\"' + arguments[0] + '\"] .count')"
        ".textContent;", slug))


LIFETIME = 2.0  # seconds: the pages' streams end and resume several times per test

# Set on the page when #status ever says offline (a lifetime reconnect must not).
WATCH_STATUS_JS = """
window.wentOffline = false;
new MutationObserver(function () {
  if (document.getElementById('status').getAttribute('data-state') === 'offline') {
    window.wentOffline = true;
  }
}).observe(document.getElementById('status'), {attributes: true});
"""


@pytest.fixture
def short_lived_streams(tmp_path: Path) -> Iterator[ChatServer]:
    rules = {**UNLIMITED_CHAT_ENV, "CHAT_STREAM_LIFETIME": str(LIFETIME), "CHAT_WEBSOCKET": "0"}
    server = ChatServer(tmp_path / "db.sqlite3", tmp_path, name="short", rules=rules)
    server.migrate()
    server.start()
    yield server
    server.stop()


def test_moderation_and_stream_lifetimes_over_sse(short_lived_streams: ChatServer,
                                                  browser: WebDriver,
                                                  other_browser: WebDriver) -> None:
    """The owner of a room deletes a guest's message: it leaves the guest's page over
    the stream.  Streams end every LIFETIME seconds: the pages resume with
    Last-Event-ID, show every message once, and never say they are offline."""
    site = short_lived_streams
    olga, bob = browser, other_browser
    sign_up(olga, site, "olga")
    olga.get(site.url("/"))
    olga.find_element(By.ID, "id_slug").send_keys("olgas")
    olga.find_element(By.ID, "id_title").send_keys("Olga's")
    submit(olga, "#create-room [type=submit]", "creating a room")
    open_room(bob, site.url(""), "olgas", "bob")
    for page in (olga, bob):
        until(page, transport_is("sse"), "the page did not go live over EventSource", LIVE)
        page.execute_script(WATCH_STATUS_JS)

    type_message(bob, "buy cheap stuff")
    spam = wait_for_message(olga, "buy cheap stuff", timeout=LIVE)
    olga.find_element(By.CSS_SELECTOR, f'li.message[data-id="{spam}"] button.delete').click()
    until(bob, lambda d: not ids_of(d, "buy cheap stuff"),
          "the deleted message stayed on the guest's page", LIVE)

    def streams_ended() -> int:  # the access log has a line per stream, at its end
        return site.stdout().count("/rooms/olgas/events?") + \
            site.stderr().count("/rooms/olgas/events?")

    texts = []
    for n in range(3):  # each after a stream ended: some reach a page by its replay
        ended = streams_ended()
        until(bob, lambda d, ended=ended: streams_ended() > ended,
              "no stream reached its lifetime",
              LIFETIME * 5)
        texts.append(f"across lifetimes {n}")
        type_message(olga, texts[-1])
        wait_for_message(bob, texts[-1], timeout=LIVE)
    for page in (olga, bob):
        assert_each_once_in_order(page, texts)
        assert not ids_of(page, "buy cheap stuff")
        assert not page.execute_script("return window.wentOffline;"), \
            "the page said Reconnecting… for an ordinary end of its stream"
        assert transport(page) == "sse"


# nginx holding the event streams back, as a misconfigured proxy would: the stream's
# X-Accel-Buffering: no is ignored and the stream is gzipped.  (Observed with Debian's
# nginx 1.22: proxy_buffering on alone still passes each event on as it arrives; gzip,
# the usual culprit in the field, holds the headers and events until its buffer fills.)
BUFFERED_LOCATION = """\
    location ~ /events$ {
        proxy_pass http://chat;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_buffering on;
        proxy_ignore_headers X-Accel-Buffering;
        gzip on;
        gzip_types text/event-stream;
    }
"""


class BufferingNginx(Nginx):
    """docs/deployment.md's nginx without its WebSocket lines (the page's socket is
    refused, so it tries the stream), with a location in front that buffers and gzips
    the event streams."""

    def conf(self) -> str:
        documented = nginx.without_websocket(super().conf())
        marker = "    location ~ ^/(rooms/.*/(updates"
        assert documented.count(marker) == 1, "the documented nginx block changed shape"
        return documented.replace(marker, BUFFERED_LOCATION + marker, 1).replace(
            "proxy_set_header Host $host;", "proxy_set_header Host $http_host;")


@pytest.fixture
def buffering_proxy(chat_server: ChatServer, tmp_path: Path) -> Iterator[BufferingNginx]:
    if not nginx.available():
        pytest.skip("nginx is not installed")
    proxy = BufferingNginx(tmp_path / "nginx", chat_server.port).start()
    yield proxy
    proxy.stop()


def test_the_page_falls_back_to_long_poll_behind_a_buffering_proxy(
        chat_server: ChatServer, buffering_proxy: BufferingNginx, new_room: str,
        browser: WebDriver, other_browser: WebDriver) -> None:
    """Behind the buffering proxy no stream event arrives: the page switches to the
    long-poll, says so, and shows every message once, including one posted while it
    was still waiting on the stream."""
    ann, bob = browser, other_browser
    proxied = f"http://127.0.0.1:{buffering_proxy.port}"
    open_room(bob, chat_server.url(""), new_room, "bob")
    until(bob, transport_is("websocket"), "the direct page is not on its WebSocket", LIVE)
    open_room(ann, proxied, new_room, "ann")
    # Posted through the server (it wakes whatever ann's page waits on), normally
    # while ann's page still waits for its stream's first event.
    type_message(bob, "while ann waits on the stream")
    until(ann, transport_is("longpoll"), "the page did not fall back to the long-poll",
          FALLBACK)
    assert ann.find_element("id", "transport").text == "live (long-poll)"
    wait_for_message(ann, "while ann waits on the stream", timeout=LIVE)

    type_message(bob, "from bob over sse")
    wait_for_message(ann, "from bob over sse", timeout=LIVE)
    type_message(ann, "from ann over long-poll")
    wait_for_message(bob, "from ann over long-poll", timeout=LIVE)
    texts = ["while ann waits on the stream", "from bob over sse", "from ann over long-poll"]
    for page in (ann, bob):
        assert_each_once_in_order(page, texts)
    # The proxy really carried (and held back) the page's stream, then its long-polls.
    log = "\n".join(buffering_proxy.access_log())
    assert f"/rooms/{new_room}/events?after=" in log
    assert f"/rooms/{new_room}/updates?after=" in log

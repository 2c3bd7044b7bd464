"""Fixtures: real ``runcomet`` servers, fresh browsers, screenshots on failure."""

from __future__ import annotations

import itertools
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from functional_tests.browser import new_browser, quit_browser
from functional_tests.server import ChatServer
from tests.helpers.proc import REDIS_URL

SCREENSHOT_DIR = Path("/tmp")
_room_numbers = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "multiprocess: needs two runcomet processes sharing Redis (COMET_BROKER)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """Remember each phase's report so fixture teardown knows the test failed."""
    report = yield
    setattr(item, f"ft_report_{report.when}", report)
    return report


def _failed(item: pytest.Item) -> bool:
    return any(getattr(item, f"ft_report_{when}", None) is not None
               and getattr(item, f"ft_report_{when}").failed for when in ("setup", "call"))


@pytest.fixture(scope="session")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    """One server and fresh database for the session; tests use their own rooms."""
    workdir = tmp_path_factory.mktemp("chat")
    server = ChatServer(workdir / "db.sqlite3", workdir)
    server.migrate()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ChatServer]:
    """A dedicated server and database, for a test that stops and restarts it."""
    server = ChatServer(tmp_path / "db.sqlite3", tmp_path, name="own")
    server.migrate()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server_pair(tmp_path: Path) -> Iterator[tuple[ChatServer, ChatServer]]:
    """Two runcomet processes sharing one SQLite file and the Redis broker."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        pytest.skip("Redis is not listening on 127.0.0.1:6379")
    db = tmp_path / "db.sqlite3"
    first = ChatServer(db, tmp_path, name="one", broker=REDIS_URL)
    second = ChatServer(db, tmp_path, name="two", broker=REDIS_URL)
    first.migrate()
    started = []
    try:
        for server in (first, second):
            server.start()
            started.append(server)
        yield first, second
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def browser_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[], WebDriver]]:
    """Start browsers on demand; on failure save each one's screenshot and HTML to /tmp."""
    browsers: list[WebDriver] = []

    def make() -> WebDriver:
        driver = new_browser()
        browsers.append(driver)
        return driver

    yield make
    name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
    failed = _failed(request.node)
    for index, driver in enumerate(browsers):
        try:
            if failed:
                stem = SCREENSHOT_DIR / f"ft_{name}_browser{index}"
                driver.save_screenshot(f"{stem}.png")
                Path(f"{stem}.html").write_text(driver.page_source)
                print(f"screenshot: {stem}.png (url {driver.current_url})")
        except Exception as exc:  # a dead browser must not hide the real failure
            print(f"no screenshot of browser {index}: {exc}")
        finally:
            quit_browser(driver)


@pytest.fixture
def browser(browser_factory: Callable[[], WebDriver]) -> WebDriver:
    return browser_factory()


@pytest.fixture
def other_browser(browser_factory: Callable[[], WebDriver]) -> WebDriver:
    return browser_factory()


@pytest.fixture
def new_room(chat_server: ChatServer, request: pytest.FixtureRequest) -> str:
    """A room of its own for one test, so counts and history of others do not leak in."""
    slug = f"ft-{next(_room_numbers)}-{re.sub(r'[^a-z0-9]+', '-', request.node.name.lower())}"
    slug = slug[:50].strip("-")
    chat_server.create_room(slug, f"Room of {request.node.name}")
    return slug

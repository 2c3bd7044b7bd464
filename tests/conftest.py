"""Fixtures that run the comet server as a real process for black-box tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from comet_server.push.default_hub import get_hub, set_hub
from comet_server.push.hub import Hub
from tests.helpers.proc import ServerProcess, launch, runcomet_argv, wsgi_app_argv

StartServer = Callable[..., ServerProcess]


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    """Rate-limit counts (Django's cache) start empty in each test."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def fresh_hub() -> Iterator[Hub]:
    """Each test gets its own in-process comet hub: no history or waiters leak."""
    previous = get_hub()
    hub = Hub()
    set_hub(hub)
    yield hub
    set_hub(previous)


@pytest.fixture(scope="session")
def comet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One ``runcomet`` server with default options, shared by tests that do not
    depend on global counters (they use their own channel names)."""
    server = launch(runcomet_argv(), tmp_path_factory.mktemp("comet"), "shared")
    yield server
    server.terminate()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start dedicated servers (own options, own counters); all stopped at teardown."""
    started: list[ServerProcess] = []

    def start(*options: str, app: str | None = None, host: str = "127.0.0.1") -> ServerProcess:
        argv = wsgi_app_argv(app, *options) if app else runcomet_argv(*options, host=host)
        server = launch(argv, tmp_path, f"server{len(started)}")
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.terminate()

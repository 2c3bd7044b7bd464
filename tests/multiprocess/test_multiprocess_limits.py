"""Rate limits hold across processes: with COMET_BROKER set they count in Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.multiprocess import helpers

pytestmark = pytest.mark.multiprocess

LIMIT = 4


@pytest.fixture
def limited_pair(mp_database: str, tmp_path: Path) -> Iterator[list[helpers.Server]]:
    """Two servers with a post limit of 4 per session (per day: no window ends mid-test)."""
    env = {**helpers.server_env(mp_database), "CHAT_RATE_POST_SESSION": f"{LIMIT}/86400"}
    servers = [helpers.Server(env, tmp_path, f"limited{i}") for i in range(2)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            try:
                assert server.terminate() == 0
            finally:
                server.kill()


def test_one_sessions_posts_count_together_on_every_process(limited_pair, room) -> None:
    slug, _ = room
    a, b = limited_pair
    poster = helpers.Poster("limited")
    headers = {"Referer": a.url(f"/rooms/{slug}/")}
    statuses = []
    for i in range(LIMIT + 2):
        server = (a, b)[i % 2]  # alternate: each process alone would allow all of them
        if "csrftoken" not in poster.session.cookies:
            poster.session.get(server.url(f"/rooms/{slug}/"), timeout=30)
        resp = poster.session.post(
            server.url(f"/rooms/{slug}/messages"), timeout=30,
            data={"text": f"m{i}", "nick": poster.nick},
            headers={**headers, "X-CSRFToken": poster.session.cookies["csrftoken"]})
        statuses.append(resp.status_code)
    assert statuses == [201] * LIMIT + [429, 429]
    assert int(resp.headers["Retry-After"]) >= 1 and resp.json()["error"]

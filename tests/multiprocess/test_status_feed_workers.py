"""The chat's status feed and a /metrics scrape of a --workers 2 runcomet show the
same totals, equal to the load applied (N long-polls parked over both workers, then
woken by one post)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor, wait

import pytest

from tests.helpers.proc import manage, wait_until
from tests.helpers.scrape import scrape, wait_scrape
from tests.multiprocess import helpers
from tests.multiprocess.helpers import Poster, poll_once, session

pytestmark = pytest.mark.multiprocess
PARKED = 12


def staff_session(server: helpers.Server):
    manage("createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.com",
           env={**server.env, "DJANGO_SUPERUSER_PASSWORD": "ops-pass-1"})
    http = session()
    page = http.get(server.url("/admin/login/"), timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the admin login"
    answer = http.post(server.url("/admin/login/?next=/status/"), timeout=30,
                       headers={"Referer": server.url("/admin/login/")},
                       data={"csrfmiddlewaretoken": token[1], "username": "ops",
                             "password": "ops-pass-1", "next": "/status/"})
    assert answer.url == server.url("/status/"), answer.url
    return http


def test_status_feed_and_scrape_agree_over_two_workers(start_chat_server, room) -> None:
    slug, _ = room
    server = start_chat_server(workers=2)
    http = staff_session(server)
    workers = {str(pid) for pid in server.worker_pids()}

    def feed() -> dict:
        data = http.get(server.url("/status/feed"), timeout=30).json()
        assert data["running"] is True
        return data

    wait_until(lambda: {str(w["worker"]) for w in feed()["workers"]} == workers, 10,
               "both workers in the feed")
    before = feed()["total"]["delivered_total"]
    assert scrape(server.port).value("comet_deliveries_total") == before
    with ThreadPoolExecutor(PARKED) as pool:
        futures = [pool.submit(poll_once, server, slug, 0) for _ in range(PARKED)]
        # One feed (another may come from the other worker, whose copy of this one's
        # numbers can be a second old).
        fed = wait_until(lambda: (f := feed())["total"]["parked"] == PARKED and f, 20,
                         f"{PARKED} parked")
        assert sum(w["parked"] for w in fed["workers"]) == PARKED
        scraped = wait_scrape(server.port, lambda s: s.value("comet_parked") == PARKED)
        assert scraped.workers() == workers
        Poster("loadgen").post(server, slug, "everyone wake up")
        done, pending = wait(futures, timeout=30)
        assert not pending
    wait_until(lambda: feed()["total"]["delivered_total"] == before + PARKED, 10,
               "the deliveries in the feed")

    def agree(s) -> bool:
        total = feed()["total"]
        return (s.value("comet_deliveries_total") == total["delivered_total"]
                and s.value("comet_published_total") == total["published_total"]
                and s.value("comet_parked") == total["parked"] == 0)

    wait_scrape(server.port, agree, message="the scrape and the feed agree")

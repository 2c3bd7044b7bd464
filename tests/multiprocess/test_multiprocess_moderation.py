"""Moderation across processes: a deletion made through process A reaches the pages
parked on process B at once, and B's pages resuming later learn of it too."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers.proc import manage
from tests.multiprocess import helpers
from tests.multiprocess.helpers import POLL_TIMEOUT

pytestmark = pytest.mark.multiprocess

PASSWORD = "a-Long-pass-4242"


def staff_session(server: helpers.Server, db_url: str, username: str) -> requests.Session:
    """A staff user (made with manage.py, as an operator would), logged in on ``server``."""
    code = ("from django.contrib.auth import get_user_model as g; "
            f"g().objects.create_user({username!r}, password={PASSWORD!r}, is_staff=True)")
    manage("shell", "-c", code, env=helpers.server_env(db_url))
    http = helpers.session()
    page = http.get(server.url("/accounts/login/"), timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the login page"
    answer = http.post(server.url("/accounts/login/"), timeout=30, allow_redirects=False,
                       data={"csrfmiddlewaretoken": token[1], "username": username,
                             "password": PASSWORD},
                       headers={"Referer": server.url("/accounts/login/")})
    assert answer.status_code == 302, answer.text[:500]
    return http


def poll(server: helpers.Server, slug: str, after: int, changes: int) -> tuple[dict, float]:
    resp = helpers.session().get(server.url(f"/rooms/{slug}/updates"),
                                 params={"after": after, "changes": changes},
                                 timeout=POLL_TIMEOUT + 10)
    assert resp.status_code == 200, resp.text[:500]
    return resp.json(), time.monotonic()


def test_a_deletion_on_one_process_removes_the_message_on_another(
        start_chat_server, room, mp_database) -> None:
    slug, room_id = room
    a, b = start_chat_server(), start_chat_server()
    moderator = staff_session(a, mp_database, f"mod-{slug}")
    message_id = helpers.insert_message(mp_database, room_id, "spam from afar")
    with ThreadPoolExecutor(4) as pool:
        parked = [pool.submit(poll, b, slug, message_id, 0) for _ in range(4)]
        b.wait_parked(4)
        since = time.monotonic()
        resp = moderator.post(a.url(f"/rooms/{slug}/messages/{message_id}/delete"), timeout=30,
                              headers={"X-CSRFToken": moderator.cookies["csrftoken"],
                                       "Referer": a.url(f"/rooms/{slug}/")})
        assert resp.status_code == 200, resp.text[:500]
        answers = [f.result(timeout=POLL_TIMEOUT) for f in parked]
    for data, at in answers:
        assert at - since < POLL_TIMEOUT / 2, "answered by the timeout, not by the deletion"
        [change] = data["changes"]
        assert change["type"] == "deleted"
        assert change["message"] == {"id": message_id, "deleted": True}
    # A page of B that was away (its change cursor from before) learns of it at once.
    data, _ = poll(b, slug, message_id, 0)
    assert [c["message"]["id"] for c in data["changes"]] == [message_id]

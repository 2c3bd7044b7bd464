"""The status page's access rules and its feed outside the comet server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from comet_server.serving.snapshot import FIELDS


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_the_login(client) -> None:
    for path in ("/status/", "/status/feed"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.django_db
def test_users_who_are_not_staff_are_refused(client, django_user_model) -> None:
    """403, not the login: the login would send a logged-in user straight back."""
    user = django_user_model.objects.create_user("plain", password="x-pass-1")
    client.force_login(user)
    assert client.get("/status/").status_code == 403
    assert client.get("/status/feed").status_code == 403
    assert b'id="nav-status"' not in client.get("/").content


@pytest.mark.django_db
def test_staff_get_the_page_and_a_feed(admin_client) -> None:
    page = admin_client.get("/status/")
    assert page.status_code == 200
    assert b'data-feed="/status/feed"' in page.content
    assert b"uPlot.iife.min.js" in page.content
    feed = admin_client.get("/status/feed")
    assert feed.json()["running"] is False  # no comet server in this process
    assert feed["Cache-Control"].startswith("max-age=0")
    assert b'id="status-link"' in admin_client.get("/admin/").content
    assert b'id="nav-status"' in admin_client.get("/").content


STATUS_JS = Path(__file__).resolve().parent.parent / "chatsite/static/status/status.js"


def fields_read_by_the_page(js: str) -> set[str]:
    """The snapshot fields status.js reads: ``w.x`` (a worker's or the total's),
    ``t.x`` and ``total.x`` (the total), the histograms its p99 lines name and the
    fields its columns show as they are (``show: "x"``)."""
    names = set(re.findall(r"\b(?:w|t|total)\.([A-Za-z_][A-Za-z0-9_]*)", js))
    names |= set(re.findall(r"p99Line\(.*?\"([A-Za-z0-9_]+)\"\)", js))
    names |= set(re.findall(r"\bshow: \"([A-Za-z0-9_]+)\"", js))
    return names


def test_the_page_reads_only_fields_of_the_worker_snapshot() -> None:
    """The columns and charts (status.js's COLUMNS and CHARTS) name fields of the one
    typed snapshot the feed sends (``WorkerSnapshot``), or the total's worker count."""
    read = fields_read_by_the_page(STATUS_JS.read_text())
    assert {"connections", "parked", "not_delivered", "loop_lag_seconds",
            "queued_seconds"} <= read
    assert read - {"workers"} <= set(FIELDS), read - set(FIELDS)


def test_a_misspelt_field_in_the_page_is_caught() -> None:
    for js in ("value: function (w) { return w.conections; }", 'show: "parkd"}',
               'lines: [p99Line("lag p99 (ms)", "#b4234f", "loop_lag_secs")]'):
        assert not fields_read_by_the_page(js) <= set(FIELDS), js

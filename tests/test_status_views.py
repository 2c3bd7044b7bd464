"""The status page's access rules and its feed outside the comet server."""

from __future__ import annotations

import pytest


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

"""The staff's status page: anonymous visitors go to the login; staff see the totals
of the load a test applies (the same as a /metrics scrape) and charts with data.

``COMET_STATUS_SCREENSHOT=docs/status.png`` also saves the page for README."""

from __future__ import annotations

import os
import re
import socket

import requests
from selenium.webdriver.common.by import By

from functional_tests.browser import until
from tests.helpers.http import build_request, connect, read_response
from tests.helpers.proc import manage
from tests.helpers.scrape import scrape

PARKED = 4


def total(driver, field: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f'#status-total td[data-field="{field}"]').text


def log_in(driver, username: str, password: str) -> None:
    """The site's login form (accounts); it returns to ``next``."""
    until(driver, lambda d: d.find_elements(By.ID, "login-form"), "the login form")
    form = driver.find_element(By.ID, "login-form")
    form.find_element(By.NAME, "username").send_keys(username)
    form.find_element(By.NAME, "password").send_keys(password)
    form.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()


def post(server, slug: str, text: str) -> None:
    """Post as a visitor would (the room page's CSRF cookie, then the form's POST)."""
    with requests.Session() as http:
        http.get(server.url(f"/rooms/{slug}/"), timeout=15).raise_for_status()
        answer = http.post(server.url(f"/rooms/{slug}/messages"), timeout=15,
                           data={"text": text, "nick": "loadgen"},
                           headers={"X-CSRFToken": http.cookies["csrftoken"],
                                    "Referer": server.url(f"/rooms/{slug}/")})
        assert answer.status_code == 201, answer.text[:300]


def test_status_page_for_staff_only_with_live_totals(own_server, browser_factory,
                                                     tmp_path) -> None:
    server = own_server
    manage("createsuperuser", "--noinput", "--username", "boss", "--email",
           "boss@example.com", env={**server.env, "DJANGO_SUPERUSER_PASSWORD": "staff-pass-1"})
    manage("shell", "-c", "from django.contrib.auth.models import User; "
           "User.objects.create_user('plain', password='plain-pass-1')", env=server.env)
    server.create_room("watched", "Watched room")

    anonymous = browser_factory()
    anonymous.get(server.url("/status/"))
    until(anonymous, lambda d: "/accounts/login/" in d.current_url, "sent to the login")
    assert re.search(r"next=(/|%2F)status(/|%2F)", anonymous.current_url)
    assert requests.get(server.url("/status/feed"), timeout=10, allow_redirects=False) \
        .status_code == 302
    # A user who is not staff logs in and is refused (no loop back to the login).
    log_in(anonymous, "plain", "plain-pass-1")
    until(anonymous, lambda d: d.current_url == server.url("/status/"), "back at /status/")
    until(anonymous, lambda d: "403" in d.find_element(By.TAG_NAME, "body").text
          or "Forbidden" in d.find_element(By.TAG_NAME, "body").text, "refused")
    assert not anonymous.find_elements(By.ID, "status-workers")
    assert not anonymous.find_elements(By.ID, "nav-status")

    staff = browser_factory()
    staff.get(server.url("/status/"))
    until(staff, lambda d: d.find_elements(By.ID, "login-form"), "the login page")
    log_in(staff, "boss", "staff-pass-1")
    until(staff, lambda d: d.find_elements(By.ID, "status-total"), "the totals row")
    staff.get(server.url("/admin/"))  # the admin links to it too
    until(staff, lambda d: d.find_elements(By.ID, "status-link"), "the admin's status link")
    # The link is a module of the app list: "Recent actions" keeps its place beside it.
    assert staff.execute_script(
        "return document.getElementById('status-module').closest('#content-main') !== null;")
    top = staff.execute_script("return [document.getElementById('content-main')"
                               ".getBoundingClientRect().top, document.getElementById("
                               "'recent-actions-module').getBoundingClientRect().top];")
    assert abs(top[0] - top[1]) < 40, f"Recent actions pushed down: {top}"
    staff.find_element(By.ID, "status-link").click()
    until(staff, lambda d: d.find_elements(By.ID, "status-total"), "the totals row")
    assert total(staff, "worker") == "total (1 worker)"
    deliveries_before = int(total(staff, "deliveries"))

    polls: list[tuple[socket.socket, object]] = []
    try:
        for _ in range(PARKED):
            sock = connect(server.port)
            sock.sendall(build_request("GET", "/rooms/watched/updates?after=0",
                                       headers={"Host": "127.0.0.1"}))
            polls.append((sock, sock.makefile("rb")))
        until(staff, lambda d: total(d, "parked") == str(PARKED), f"{PARKED} parked shown")
        assert scrape(server.port).value("comet_parked") == PARKED
        post(server, "watched", "wake them")
        for _, reader in polls:
            assert read_response(reader).status == 200
    finally:
        for sock, reader in polls:
            reader.close()
            sock.close()
    until(staff, lambda d: total(d, "parked") == "0"
          and int(total(d, "deliveries")) == deliveries_before + PARKED, "the deliveries shown")
    metrics = scrape(server.port)
    assert metrics.value("comet_deliveries_total") == deliveries_before + PARKED
    assert int(total(staff, "published")) == metrics.value("comet_published_total")
    workers = staff.find_elements(By.CSS_SELECTOR, "#status-workers tbody tr")
    assert [w.get_attribute("data-worker") for w in workers] == [str(server.pid)]

    def charted(d) -> bool:
        points = d.execute_script(
            "var c = window.statusCharts; return [c.connections.data[0].length, "
            "c.parked.data[1].filter(function (v) { return v > 0; }).length, "
            "c.deliveries.data[1].filter(function (v) { return v > 0; }).length];")
        return points[0] >= 3 and points[1] >= 1 and points[2] >= 1

    until(staff, charted, "charts with samples, the parked polls and their deliveries")
    assert len(staff.find_elements(By.CSS_SELECTOR, ".status-charts canvas")) == 4
    # Each chart says what it measures; at 1200 px the table needs no scrollbar and the
    # charts fill their rows (no empty cell).
    for figure in staff.find_elements(By.CSS_SELECTOR, ".status-charts figure"):
        assert len(figure.find_element(By.CSS_SELECTOR, ".chart-what").text) > 30
    staff.set_window_size(1200, 900)
    staff.execute_script("document.getElementById('status-workers').scrollIntoView();")
    staff.save_screenshot(str(tmp_path / "status-table-1200.png"))
    until(staff, lambda d: d.execute_script(
        "var w = document.querySelector('.status-table-wrap');"
        " return w.scrollWidth <= w.clientWidth;"), "the workers table overflows at 1200 px")
    rows = staff.execute_script(
        "var f = Array.from(document.querySelectorAll('.status-charts figure'));"
        " return f.map(function (e) { var r = e.getBoundingClientRect();"
        " return [Math.round(r.left), Math.round(r.right)]; });")
    edges = staff.execute_script(
        "var r = document.querySelector('.status-charts').getBoundingClientRect();"
        " return [Math.round(r.left), Math.round(r.right)];")
    assert max(right for _left, right in rows) == edges[1], "charts leave an empty cell"
    staff.save_screenshot(str(tmp_path / "status-1200.png"))
    print(f"screenshot: {tmp_path / 'status-1200.png'}")
    target = os.environ.get("COMET_STATUS_SCREENSHOT")
    if target:
        staff.set_window_size(1500, 1000)
        staff.execute_script("window.scrollTo(0, 0);")
        until(staff, lambda d: d.execute_script(
            "return window.statusCharts.connections.data[0].length") >= 8, "more samples", 40)
        staff.save_screenshot(target)

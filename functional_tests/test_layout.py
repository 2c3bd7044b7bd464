"""The promises of the room page's layout, at a desktop size and a phone's, with
screenshots of both (in the test's tmp dir; with COMET_DOCS_SCREENSHOT=1 also the
README's docs/screenshot.png, docs/screenshot-phone.png and docs/screenshot-lobby.png).

- the text box and Send are on screen on a phone without scrolling the page;
- the page itself does not scroll: the message list does, under a header that stays;
- consecutive messages of one author are grouped under one author line;
- your own messages are styled as yours;
- the rooms sidebar counts the messages you have not seen in other rooms;
- who is here is sorted as people read ("anna" before "Eve").
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from functional_tests.browser import (
    LIVE,
    open_room,
    type_message,
    until,
    wait_for_message,
)
from functional_tests.server import ChatServer

ROOT = Path(__file__).resolve().parents[1]
DOCS_SHOTS = {"screenshot.png", "screenshot-phone.png", "screenshot-lobby.png"}
DESKTOP = (1200, 900)
PHONE = (390, 844)

# The inner viewport is what a phone shows: set the window so that it is exactly that.
FIT_VIEWPORT_JS = "return [window.innerWidth, window.innerHeight];"

RECT_JS = """
var r = document.querySelector(arguments[0]).getBoundingClientRect();
return {top: r.top, bottom: r.bottom, left: r.left, right: r.right,
        width: r.width, height: r.height};
"""


DRAWERS_SETTLED_JS = """
var out = true;
document.querySelectorAll('.rooms-sidebar, .people').forEach(function (el) {
  out = out && el.getAnimations().length === 0;
});
return out;
"""


def set_viewport(driver: WebDriver, width: int, height: int) -> None:
    driver.set_window_size(width, height)
    inner = driver.execute_script(FIT_VIEWPORT_JS)
    driver.set_window_size(width + (width - inner[0]), height + (height - inner[1]))
    until(driver, lambda d: d.execute_script(FIT_VIEWPORT_JS) == [width, height],
          f"the viewport did not become {width}x{height}")
    until(driver, lambda d: d.execute_script(DRAWERS_SETTLED_JS), "the drawers kept moving")


def rect(driver: WebDriver, css: str) -> dict[str, float]:
    return driver.execute_script(RECT_JS, css)


def inside_viewport(driver: WebDriver, css: str) -> bool:
    r = rect(driver, css)
    width, height = driver.execute_script(FIT_VIEWPORT_JS)
    return r["top"] >= 0 and r["left"] >= 0 and r["bottom"] <= height and r["right"] <= width \
        and r["width"] > 0 and r["height"] > 0


def page_scrolls(driver: WebDriver) -> bool:
    return driver.execute_script(
        "var e = document.scrollingElement; return e.scrollHeight > e.clientHeight + 1;")


def page_too_wide(driver: WebDriver) -> bool:
    return driver.execute_script(
        "var e = document.scrollingElement; return e.scrollWidth > e.clientWidth + 1;")


# WCAG contrast of an element's text against the first opaque background behind it.
CONTRAST_JS = """
function rgb(c) {
  var m = c.match(/[\\d.]+/g).map(Number);
  return m.length > 3 ? m : m.concat([1]);
}
function lum(c) {
  var v = c.slice(0, 3).map(function (x) { x /= 255;
    return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
}
var out = [];
document.querySelectorAll(arguments[0]).forEach(function (el) {
  if (!el.offsetParent || !el.textContent.trim()) { return; }
  var bg = null;
  for (var e = el; e && !bg; e = e.parentElement) {
    var c = rgb(getComputedStyle(e).backgroundColor);
    if (c[3] > 0.9) { bg = c; }
  }
  bg = bg || [255, 255, 255, 1];
  var a = lum(rgb(getComputedStyle(el).color)), b = lum(bg);
  out.push([el.className || el.tagName, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]);
});
return out;
"""
TEXTS = (".message .author, .message .text, .message .time, .room-nav a, .unread, #send, "
         ".status, .transport, .room-title .description, .composer-foot, .day-divider, "
         "#presence li, .people h2, .sidebar-head h2, .sidebar-all, .people-button")


def low_contrast(driver: WebDriver) -> list[tuple[str, float]]:
    """Texts below WCAG AA (4.5:1)."""
    measured = driver.execute_script(CONTRAST_JS, TEXTS)
    assert len(measured) >= 10, f"too few texts measured: {measured}"
    return [(name, round(ratio, 2)) for name, ratio in measured if ratio < 4.5]


def shoot(driver: WebDriver, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    if os.environ.get("COMET_DOCS_SCREENSHOT") == "1" and path.name in DOCS_SHOTS:
        shutil.copy(path, ROOT / "docs" / path.name)
    return path


def group_of(driver: WebDriver, text: str) -> dict[str, Any]:
    return driver.execute_script("""
        var want = arguments[0];
        var li = Array.from(document.querySelectorAll('#messages li.message')).find(
            function (li) { return li.querySelector('.text').textContent === want; });
        var author = li.querySelector('.meta');
        return {continued: li.classList.contains('continued'), mine: li.classList.contains('mine'),
                authorShown: getComputedStyle(li.querySelector('.author')).display !== 'none',
                avatarShown: getComputedStyle(li.querySelector('.avatar')).visibility !== 'hidden',
                initials: li.querySelector('.avatar').getAttribute('data-initials'),
                authorColor: getComputedStyle(li.querySelector('.author')).color,
                metaTop: author.getBoundingClientRect().top};
    """, text)


class Poster:
    """Someone posting over plain HTTP (as a guest with a name): live, like a browser."""

    def __init__(self, server: ChatServer, nick: str) -> None:
        self.server, self.nick, self.http = server, nick, requests.Session()

    def post(self, slug: str, *texts: str) -> None:
        room = self.server.url(f"/rooms/{slug}/")
        page = self.http.get(room, timeout=15)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
        headers = {"Referer": room}
        if 'id="nick-form"' in page.text:
            self.http.post(room + "nick", data={"nick": self.nick, "csrfmiddlewaretoken": token},
                           headers=headers, timeout=15).raise_for_status()
        for text in texts:
            answer = self.http.post(room + "messages", timeout=15, headers=headers,
                                    data={"text": text, "csrfmiddlewaretoken": token})
            assert answer.status_code in (200, 201), (answer.status_code, answer.text)


@pytest.fixture(scope="module")
def chat_room(chat_server: ChatServer) -> tuple[ChatServer, str]:
    """Two rooms of their own (the first one is the screenshots' conversation)."""
    chat_server.create_room("reading-circle", "Reading circle", "One chapter a week")
    chat_server.create_room("translators", "Translators", "Words that do not travel well")
    return chat_server, "reading-circle"


def test_room_page_layout_on_desktop_and_phone(chat_room: tuple[ChatServer, str],
                                               browser: WebDriver, other_browser: WebDriver,
                                               tmp_path: Path) -> None:
    server, slug = chat_room
    other = "translators"
    ann, eve = browser, other_browser
    set_viewport(ann, *DESKTOP)
    # ann has seen the other room (so its new messages count as unread for her).
    open_room(ann, server.url(""), other, "anna")
    open_room(ann, server.url(""), slug)
    open_room(eve, server.url(""), slug, "Eve")

    history = [("Eve", "Morning! Anyone read the new draft?"),
               ("Eve", "I left some comments on chapter two."),
               ("Eve", "Mostly small things: names, dates, one plot hole.")]
    eve_http = Poster(server, "Eve")
    eve_http.post(slug, *[t for a, t in history if a == "Eve"])
    for _author, text in history:
        wait_for_message(ann, text, timeout=LIVE)
    type_message(ann, "Reading it now, thanks!")
    wait_for_message(ann, "Reading it now, thanks!")
    type_message(ann, "The plot hole is the train timetable, right?", enter=True)
    wait_for_message(eve, "The plot hole is the train timetable, right?", timeout=LIVE)
    type_message(eve, "Exactly: the 7:40 leaves before the 7:35 arrives.")
    type_message(eve, "Also, who brings the snacks on Thursday?")
    marcus = Poster(server, "Marcus")
    marcus.post(slug, "I can bake something. Lemon cake?")
    wait_for_message(ann, "I can bake something. Lemon cake?", timeout=LIVE)

    # Grouping: one author line for Eve's three messages, and for ann's two.
    first, second = group_of(ann, history[0][1]), group_of(ann, history[1][1])
    assert not first["continued"] and first["authorShown"] and first["avatarShown"]
    assert first["initials"] == "E"
    assert second["continued"] and not second["avatarShown"]
    mine = group_of(ann, "The plot hole is the train timetable, right?")
    assert mine["continued"] and mine["mine"]
    own, theirs = group_of(ann, "Reading it now, thanks!"), first
    assert own["mine"] and not theirs["mine"]
    assert own["authorColor"] != theirs["authorColor"], "own messages look like the others'"

    # Presence: sorted as people read, case aside.
    until(ann, lambda d: d.execute_script(
        "return Array.from(document.querySelectorAll('#presence li'))"
        ".map(function (li) { return li.textContent; });") == ["anna", "Eve", "Marcus"],
        "#presence is not ['anna', 'Eve', 'Marcus']", LIVE)

    # Unread: a message in the other room shows as 1 in ann's sidebar, live.
    eve_http.post(other, "New chapter is up")
    badge = f'#room-nav li[data-slug="{other}"] .unread'
    until(ann, lambda d: d.find_element(By.CSS_SELECTOR, badge).text == "1",
          "the sidebar did not count the other room's new message", LIVE)
    assert ann.find_element(By.CSS_SELECTOR, "#rooms-sidebar").is_displayed()

    shoot(ann, tmp_path / "screenshot.png")
    assert not low_contrast(ann), f"text below AA contrast: {low_contrast(ann)}"
    set_viewport(ann, *PHONE)
    until(ann, lambda d: inside_viewport(d, "#send"), "Send is not on screen on a phone")
    shoot(ann, tmp_path / "screenshot-phone.png")
    set_viewport(ann, *DESKTOP)

    # Desktop: no page scroll; the header stays while the list scrolls.
    eve_http.post(slug, *[f"filler message {n}" for n in range(40)])
    wait_for_message(ann, "filler message 39", timeout=LIVE)
    assert not page_scrolls(ann), "the room page itself scrolls on a desktop"
    header = rect(ann, ".room-header")
    ann.execute_script("document.getElementById('messages').scrollTop = 0;")
    until(ann, lambda d: d.execute_script(
        "return document.getElementById('messages').scrollTop;") == 0, "list did not scroll")
    assert rect(ann, ".room-header") == header, "the header moved when the list scrolled"
    for css in ("#message-text", "#send", ".room-header h1"):
        assert inside_viewport(ann, css), f"{css} is not on screen at 1200x900"
    shoot(ann, tmp_path / "long-desktop.png")

    # Phone: the same page at 390x844.
    set_viewport(ann, *PHONE)
    ann.refresh()
    until(ann, lambda d: inside_viewport(d, "#send"), "Send is not on screen on a phone")
    for css in ("#message-text", "#send", ".room-header h1", "#toggle-rooms"):
        assert inside_viewport(ann, css), f"{css} is not on screen at 390x844"
    assert not page_scrolls(ann), "the room page itself scrolls on a phone"
    box, send = rect(ann, "#message-text"), rect(ann, "#send")
    assert abs(box["top"] - send["top"]) < send["height"], "Send wrapped below the text box"
    assert box["width"] > PHONE[0] * 0.55, f"the text box is narrow ({box['width']} px)"
    assert not ann.find_element(By.CSS_SELECTOR, "#rooms-sidebar").is_displayed() or \
        rect(ann, "#rooms-sidebar")["right"] <= 0, "the sidebar covers the chat on a phone"
    # The list scrolls under a header that stays.
    header = rect(ann, ".room-header")
    ann.execute_script("document.getElementById('messages').scrollTop = 0;")
    assert rect(ann, ".room-header") == header
    assert not page_too_wide(ann), "the room page is wider than a phone"
    shoot(ann, tmp_path / "long-phone.png")

    # The sidebar opens as a drawer (with the unread count) and Esc closes it.
    ann.find_element(By.ID, "toggle-rooms").click()
    until(ann, lambda d: rect(d, "#rooms-sidebar")["left"] >= 0,
          "the rooms drawer did not open", LIVE)
    assert ann.find_element(By.CSS_SELECTOR, badge).text == "1"
    assert not low_contrast(ann), f"text below AA contrast: {low_contrast(ann)}"
    shoot(ann, tmp_path / "screenshot-phone-rooms.png")  # the drawer
    ann.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    until(ann, lambda d: rect(d, "#rooms-sidebar")["right"] <= 0,
          "Esc did not close the rooms drawer", LIVE)

    # Typing on the phone: the composer stays on screen and sends with Enter.
    type_message(ann, "Sent from my phone", enter=True)
    wait_for_message(eve, "Sent from my phone", timeout=LIVE)
    assert inside_viewport(ann, "#send")
    print(f"screenshots in {tmp_path}")


def test_lobby_cards_on_desktop_and_phone(chat_room: tuple[ChatServer, str],
                                          browser: WebDriver, tmp_path: Path) -> None:
    server, slug = chat_room
    set_viewport(browser, *DESKTOP)
    open_room(browser, server.url(""), slug, "carol")
    browser.get(server.url("/"))
    card = f'li.room[data-slug="{slug}"]'
    until(browser, lambda d: d.find_element(By.ID, "transport").text.startswith("live"),
          "the lobby did not go live")
    Poster(server, "Eve").post(slug, "hello from the lobby test")
    until(browser, lambda d: d.find_element(By.CSS_SELECTOR, f"{card} .unread").text == "1",
          "the lobby card did not count the unread message", LIVE)
    assert "active" in browser.find_element(By.CSS_SELECTOR, f"{card} .last").text
    assert inside_viewport(browser, "#create-room")
    shoot(browser, tmp_path / "screenshot-lobby.png")
    set_viewport(browser, *PHONE)
    browser.refresh()
    until(browser, lambda d: d.find_element(By.CSS_SELECTOR, f"{card} .unread").text == "1",
          "the phone's lobby lost the unread count")
    assert not page_too_wide(browser), "the lobby is wider than a phone"
    shoot(browser, tmp_path / "screenshot-lobby-phone.png")


def test_a_new_visitor_on_a_phone_joins_without_scrolling(chat_room: tuple[ChatServer, str],
                                                          browser: WebDriver,
                                                          tmp_path: Path) -> None:
    server, slug = chat_room
    set_viewport(browser, *PHONE)
    open_room(browser, server.url(""), slug)
    for css in ("#nick", "#nick-form button[type=submit]", ".room-header h1"):
        assert inside_viewport(browser, css), f"{css} is not on screen for a new visitor"
    assert not page_scrolls(browser) and not page_too_wide(browser)
    shoot(browser, tmp_path / "phone-new-visitor.png")
    browser.find_element(By.ID, "nick").send_keys("newcomer", Keys.ENTER)
    until(browser, lambda d: d.find_elements(By.ID, "message-text")
          and d.find_element(By.ID, "message-text").is_displayed(), "no composer after joining")
    assert inside_viewport(browser, "#send") and inside_viewport(browser, "#message-text")

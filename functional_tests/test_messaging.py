"""Sending and receiving in a room: live push, no duplicates, text stays text."""

from __future__ import annotations

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from functional_tests.browser import (
    LIVE,
    ids_of,
    messages,
    open_room,
    type_message,
    until,
    wait_for_message,
)


def test_message_from_one_browser_appears_live_in_the_other(
        chat_server, new_room, browser, other_browser):
    """The point of the site: a message shows for the other person without a reload,
    and the sender's own page shows it once although it sees it twice (POST + poll)."""
    ann, bob = browser, other_browser
    open_room(ann, chat_server.url(""), new_room, "ann")
    open_room(bob, chat_server.url(""), new_room, "bob")
    bob_page = bob.current_url

    type_message(ann, "hello from ann")
    first_id = wait_for_message(bob, "hello from ann", timeout=LIVE)

    type_message(bob, "hi ann, bob here", enter=True)
    second_id = wait_for_message(ann, "hi ann, bob here", timeout=LIVE)

    assert bob.current_url == bob_page, "the page reloaded instead of updating in place"
    # Ann's long-poll has now delivered both messages (cursor order), so any echo of
    # her own message would be in the DOM by now.
    for page, name in ((ann, "ann"), (bob, "bob")):
        wait_for_message(page, "hi ann, bob here")
        assert ids_of(page, "hello from ann") == [first_id], f"{name}: duplicate or missing"
        assert ids_of(page, "hi ann, bob here") == [second_id], f"{name}: duplicate or missing"
        shown = [(author, text) for _id, author, text in messages(page)]
        assert shown == [("ann", "hello from ann"), ("bob", "hi ann, bob here")], name
    assert int(first_id) < int(second_id)
    # Enter sent the message and the box was emptied for the next one.
    assert bob.find_element(By.ID, "message-text").get_attribute("value") == ""


XSS = "<b>bold</b><script>window.__pwned=1</script>"


def test_html_in_a_message_is_shown_as_text(chat_server, new_room, browser, other_browser):
    """Messages come from strangers: markup must never be interpreted, whether the
    message arrives by the sender's POST, by the long-poll or in the server-rendered page."""
    ann, bob = browser, other_browser
    open_room(ann, chat_server.url(""), new_room, "ann")
    open_room(bob, chat_server.url(""), new_room, "bob")

    type_message(ann, XSS)
    wait_for_message(ann, XSS)  # inserted from the POST answer
    wait_for_message(bob, XSS, timeout=LIVE)  # inserted from the long-poll
    bob.refresh()  # rendered by the template
    wait_for_message(bob, XSS)

    for page, how in ((ann, "sender"), (bob, "reloaded page")):
        item = page.find_element(By.CSS_SELECTOR, "#messages li.message .text")
        assert item.get_attribute("textContent") == XSS, how
        assert item.find_elements(By.CSS_SELECTOR, "b, script") == [], how
        assert page.execute_script("return typeof window.__pwned") == "undefined", how


def test_whitespace_only_message_shows_an_error_and_posts_nothing(
        chat_server, new_room, browser):
    """An empty message is a slip: say so, and do not bother the room with it."""
    open_room(browser, chat_server.url(""), new_room, "ann")

    type_message(browser, "   ")
    error = until(browser, EC.visibility_of_element_located((By.ID, "error")),
                  "#error was not shown after sending a whitespace-only message")
    until(browser, lambda d: error.text.strip(), "#error is shown but empty")

    stored = requests.get(chat_server.url(f"/rooms/{new_room}/messages"), timeout=15).json()
    assert stored["messages"] == [], "a whitespace-only message was stored"
    assert messages(browser) == [], "a whitespace-only message was shown"

    # The room still works afterwards, and only the real message is there.
    browser.find_element(By.ID, "message-text").clear()
    type_message(browser, "a real one")
    wait_for_message(browser, "a real one")
    assert [text for _id, _author, text in messages(browser)] == ["a real one"]

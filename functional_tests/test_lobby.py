"""The room list: live counters, and creating a room."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from functional_tests.browser import (
    LIVE,
    open_room,
    submit_and_wait_for_new_page,
    type_message,
    until,
    wait_for_message,
)


def room_number(driver, slug: str, field: str) -> int:
    text = driver.find_element(By.CSS_SELECTOR, f'li.room[data-slug="{slug}"] .{field}').text
    return int(text.strip())


def test_lobby_counts_update_live(chat_server, browser, other_browser):
    """The lobby shows where the conversation is: counts move without a reload."""
    lobby, bob = browser, other_browser
    lobby.get(chat_server.url("/"))
    until(lobby, EC.visibility_of_element_located(
        (By.CSS_SELECTOR, 'ul#rooms li.room[data-slug="random"] a')),
        "room 'random' is not listed in the lobby")
    lobby_page = lobby.current_url
    count = room_number(lobby, "random", "count")
    here = room_number(lobby, "random", "present")

    open_room(bob, chat_server.url(""), "random", "bob")
    until(lobby, lambda d: room_number(d, "random", "present") > here,
          "the lobby's .present of 'random' did not rise when bob joined", LIVE)

    type_message(bob, "anyone around?")
    wait_for_message(bob, "anyone around?")
    until(lobby, lambda d: room_number(d, "random", "count") == count + 1,
          "the lobby's .count of 'random' did not go up by one after bob posted", LIVE)
    assert lobby.current_url == lobby_page, "the lobby reloaded instead of updating"


def submit_room_form(driver, slug: str, title: str) -> None:
    form = driver.find_element(By.ID, "create-room")
    for name, value in (("slug", slug), ("title", title), ("description", "made by a test")):
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    submit_and_wait_for_new_page(
        driver, form.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]"),
        f"submitting the room {slug!r}")


def test_create_room_rejects_bad_slug_then_creates_good_one(chat_server, browser):
    """A bad address gets an explanation on the form; a good one opens the new room."""
    browser.get(chat_server.url("/"))
    until(browser, EC.visibility_of_element_located((By.ID, "create-room")),
          "the create-room form is not on the lobby")

    submit_room_form(browser, "Bad Slug!", "Bad")
    errors = until(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, ".errorlist")),
                   "no .errorlist after submitting the slug 'Bad Slug!'")
    assert errors.text.strip(), ".errorlist is empty"
    assert not browser.find_elements(By.CSS_SELECTOR, 'li.room[data-slug="Bad Slug!"]')

    submit_room_form(browser, "book-club", "Book club")
    until(browser, EC.presence_of_element_located((By.CSS_SELECTOR, 'body[data-room="book-club"]')),
          "submitting a good slug did not open the new room")
    assert browser.current_url == chat_server.url("/rooms/book-club/")
    assert "Book club" in browser.find_element(By.TAG_NAME, "h1").text

    browser.get(chat_server.url("/"))
    until(browser, EC.presence_of_element_located(
        (By.CSS_SELECTOR, 'ul#rooms li.room[data-slug="book-club"] a[href="/rooms/book-club/"]')),
        "the new room is not listed in the lobby")

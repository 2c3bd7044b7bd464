"""Accounts, guest names, rate limits, private rooms and moderation, in Chromium.

One server of its own with the chat's real rules (the shared server turns them off),
except a short post window so that waiting out a limit takes seconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC

from functional_tests.browser import (
    LIVE,
    ids_of,
    messages,
    open_room,
    submit_and_wait_for_new_page,
    type_message,
    until,
    wait_for_message,
)
from functional_tests.server import ChatServer

POST_RATE = "3/5"  # at most 3 posts per 5 s per session
PASSWORD = "a-Long-pass-4242"
_names = itertools.count(1)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    workdir: Path = tmp_path_factory.mktemp("identity")
    server = ChatServer(workdir / "db.sqlite3", workdir, name="identity",
                        rules={"CHAT_RATE_POST_SESSION": POST_RATE})
    server.migrate()
    server.start()
    yield server
    server.stop()


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


def text_of(driver: WebDriver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).get_attribute("textContent") or ""


def sign_up(driver: WebDriver, site: ChatServer, username: str) -> None:
    driver.get(site.url("/accounts/signup/"))
    for field, value in (("id_username", username), ("id_password1", PASSWORD),
                         ("id_password2", PASSWORD)):
        driver.find_element(By.ID, field).send_keys(value)
    submit_and_wait_for_new_page(
        driver, driver.find_element(By.CSS_SELECTOR, "#signup-form [type=submit]"), "sign-up")
    assert text_of(driver, "#nav-user") == username


def submit(driver: WebDriver, css: str, what: str) -> None:
    submit_and_wait_for_new_page(driver, driver.find_element(By.CSS_SELECTOR, css), what)


def test_sign_up_post_log_out_and_log_in_again(site, browser):
    name = unique("Carol")
    sign_up(browser, site, name)
    open_room(browser, site.url(""), "lobby")
    until(browser, EC.visibility_of_element_located((By.ID, "message-form")),
          "a signed-in user has no message box")
    assert not browser.find_elements(By.ID, "nick-form"), "a user was asked for a name"
    type_message(browser, "hello as myself")
    wait_for_message(browser, "hello as myself")
    assert [a for _i, a, t in messages(browser) if t == "hello as myself"] == [name]

    submit(browser, "#nav-logout", "logging out")
    until(browser, EC.presence_of_element_located((By.ID, "nav-login")), "no Log in after logout")
    assert not browser.find_elements(By.ID, "nav-user")

    # As a guest now: the username is not a name a guest can take.
    open_room(browser, site.url(""), "lobby")
    browser.find_element(By.ID, "nick").send_keys(name.upper())
    submit(browser, "#nick-form [type=submit]", "picking a username as a guest")
    assert "account" in text_of(browser, "#nick-form .errorlist")

    browser.find_element(By.ID, "nav-login").click()
    until(browser, EC.presence_of_element_located((By.ID, "login-form")), "no login page")
    browser.find_element(By.ID, "id_username").send_keys(name)
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    submit(browser, "#login-form [type=submit]", "logging in")
    assert browser.current_url.endswith("/rooms/lobby/"), "login did not return to the room"
    assert text_of(browser, "#nav-user") == name


def test_a_taken_guest_name_and_a_rate_limited_poster(site, browser, other_browser):
    zed, yan = browser, other_browser
    name = unique("zed")
    open_room(zed, site.url(""), "random", name)
    type_message(zed, "zed was here")
    wait_for_message(zed, "zed was here")

    open_room(yan, site.url(""), "random")
    yan.find_element(By.ID, "nick").send_keys(name.upper())
    submit(yan, "#nick-form [type=submit]", "picking a taken name")
    assert "taken" in text_of(yan, "#nick-form .errorlist")
    yan.find_element(By.ID, "nick").clear()
    open_room(yan, site.url(""), "random", unique("yan"))

    # Post as fast as the page lets us until the limit answers (at most two windows'
    # worth get through), then wait for the page to let us post again.
    for i in range(8):
        type_message(yan, f"burst {i}")
        until(yan, lambda d, i=i: ids_of(d, f"burst {i}") or d.find_element(
            By.ID, "error").is_displayed(), f"burst {i}: neither shown nor refused")
        if yan.find_element(By.ID, "error").is_displayed():
            break
    else:
        pytest.fail("8 posts in a row were never rate-limited")
    assert "Too many messages" in text_of(yan, "#error")
    assert not yan.find_element(By.ID, "send").is_enabled(), "Send stays usable while limited"
    until(yan, lambda d: d.find_element(By.ID, "send").is_enabled(),
          "Send never came back after Retry-After", timeout=15)
    yan.find_element(By.ID, "message-text").clear()
    type_message(yan, "after the wait")
    wait_for_message(zed, "after the wait", timeout=LIVE)


def test_private_room_members_moderation_and_removal(site, browser, other_browser):
    olga, bea = browser, other_browser
    owner, member = unique("olga"), unique("bea")
    sign_up(olga, site, owner)
    sign_up(bea, site, member)
    slug = unique("secret-")

    olga.get(site.url("/"))
    olga.find_element(By.ID, "id_slug").send_keys(slug)
    olga.find_element(By.ID, "id_title").send_keys("Secret")
    olga.find_element(By.ID, "id_private").click()
    submit(olga, "#create-room [type=submit]", "creating a private room")
    assert olga.current_url.endswith(f"/rooms/{slug}/")

    # Not a member yet: no such page, not in the lobby.
    bea.get(site.url(f"/rooms/{slug}/"))
    assert text_of(bea, "h1").startswith("Page not found")
    bea.get(site.url("/"))
    assert not bea.find_elements(By.CSS_SELECTOR, f'li.room[data-slug="{slug}"]')

    olga.find_element(By.ID, "member-username").send_keys(member)
    submit(olga, "#add-member [type=submit]", "adding a member")
    # The member's lobby shows the room live (the addition signals the lobby).
    until(bea, EC.presence_of_element_located((By.CSS_SELECTOR, f'li.room[data-slug="{slug}"]')),
          "the new member's lobby never showed the private room", timeout=LIVE)

    open_room(bea, site.url(""), slug)
    type_message(olga, "welcome in")
    wait_for_message(bea, "welcome in", timeout=LIVE)
    type_message(bea, "thanks, spam spam")
    spam_id = wait_for_message(olga, "thanks, spam spam", timeout=LIVE)

    # The owner moderates: the message vanishes from the other page at once.
    olga.find_element(By.CSS_SELECTOR, f'li.message[data-id="{spam_id}"] button.delete').click()
    until(bea, lambda d: not ids_of(d, "thanks, spam spam"),
          "the deleted message stayed on the member's page", timeout=LIVE)
    until(olga, lambda d: not ids_of(d, "thanks, spam spam"), "still on the owner's page")
    assert ids_of(bea, "welcome in")

    # Removed while watching: the page says so and stops.
    submit(olga, '#member-list li:not(:first-child) .remove-member', "removing the member")
    until(bea, lambda d: "no longer a member" in text_of(d, "#error"),
          "the removed member's page did not say so", timeout=LIVE)
    assert not bea.find_element(By.ID, "message-form").is_displayed()
    bea.get(site.url(f"/rooms/{slug}/"))
    assert text_of(bea, "h1").startswith("Page not found")

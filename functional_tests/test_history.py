"""A room shows what was said before you came, and older pages on request."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from functional_tests.browser import messages, open_room, until

PAGE = 50  # messages on load and per "load older" (chatsite.rooms.conf.PAGE_SIZE)
TOTAL = 110  # three pages: 50 on load, 50, then the last 10


def texts(driver) -> list[str]:
    return [text for _id, _author, text in messages(driver)]


def assert_in_order_once(driver) -> None:
    """Ids strictly increase down the list: in order and no message twice."""
    ids = [int(mid) for mid, _author, _text in messages(driver)]
    assert ids == sorted(set(ids)), f"messages out of order or duplicated: {ids}"


def click_load_older(driver, expect: int) -> None:
    until(driver, EC.element_to_be_clickable((By.ID, "load-older")),
          "#load-older is not clickable").click()
    until(driver, lambda d: len(messages(d)) >= expect,
          f"'load older' did not bring the list to {expect} messages")


def test_history_on_load_and_load_older(chat_server, new_room, browser):
    """Messages posted before the visit (by the post_message command) are on the
    page; 'load older' pages back through the rest, in order, without repeats."""
    all_texts = [f"history {n:03d}" for n in range(1, TOTAL + 1)]
    chat_server.post_many(new_room, all_texts[:-1], nick="archivist")
    chat_server.post_message(new_room, all_texts[-1], nick="archivist")

    open_room(browser, chat_server.url(""), new_room)  # reading needs no nick
    assert texts(browser) == all_texts[-PAGE:], "the page does not open on the latest 50"
    assert_in_order_once(browser)
    authors = {author for _id, author, _text in messages(browser)}
    assert authors == {"archivist"}

    click_load_older(browser, 2 * PAGE)
    assert texts(browser) == all_texts[-2 * PAGE:]
    assert_in_order_once(browser)

    click_load_older(browser, TOTAL)
    assert texts(browser) == all_texts
    assert_in_order_once(browser)
    until(browser, EC.invisibility_of_element_located((By.ID, "load-older")),
          "#load-older is still shown although the first message is on the page")

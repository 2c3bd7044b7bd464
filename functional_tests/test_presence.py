"""Who is here and who is typing, pushed to the other people in the room."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from functional_tests.browser import LIVE, open_room, until


def present(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#presence li'))"
        ".map(function (li) { return li.textContent.trim(); });")


def test_joining_and_typing_show_to_the_others(chat_server, new_room, browser, other_browser):
    """People want to know who reads along and that an answer is coming."""
    ann, bob = browser, other_browser
    open_room(ann, chat_server.url(""), new_room, "ann")
    until(ann, lambda d: "ann" in present(d), "ann does not see herself in #presence")
    assert "bob" not in present(ann)

    open_room(bob, chat_server.url(""), new_room, "bob")
    until(ann, lambda d: "bob" in present(d),
          "ann's #presence did not list bob after he joined", LIVE)
    assert sorted(present(bob)) == ["ann", "bob"]
    assert "bob" not in ann.find_element(By.ID, "typing").text

    bob.find_element(By.ID, "message-text").send_keys("I am writing someth")
    until(ann, lambda d: "bob" in d.find_element(By.ID, "typing").text,
          "ann's #typing did not name bob while he typed", LIVE)
    assert "typing" in ann.find_element(By.ID, "typing").text
    # Nobody is told that they themselves are typing.
    assert "bob" not in bob.find_element(By.ID, "typing").text

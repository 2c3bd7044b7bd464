"""Headless Chromium for the tests and the page actions a chatter performs."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 15.0  # generous: a loaded CI box must not make a correct page fail
LIVE = 10.0  # a pushed message must show "within a few seconds", far below the 25 s poll

# Every message of the page as [id, author, text] in DOM order, read in one round trip
# (no stale elements while the page inserts new ones); textContent keeps exact text.
MESSAGES_JS = """
return Array.from(document.querySelectorAll('#messages li.message')).map(function (li) {
  var part = function (sel) { var el = li.querySelector(sel); return el ? el.textContent : null; };
  return [li.getAttribute('data-id'), part('.author'), part('.text')];
});
"""


def new_browser() -> WebDriver:
    """A fresh headless Chromium with its own profile (own cookies, own session)."""
    profile = tempfile.mkdtemp(prefix="ft-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--window-size=1200,900",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    driver.set_page_load_timeout(30)
    driver.ft_profile = profile  # removed by quit_browser
    return driver


def quit_browser(driver: WebDriver) -> None:
    try:
        driver.quit()
    finally:
        shutil.rmtree(getattr(driver, "ft_profile", ""), ignore_errors=True)


def wait(driver: WebDriver, timeout: float = WAIT) -> WebDriverWait:
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))


def until(driver: WebDriver, condition: Any, message: str = "", timeout: float = WAIT) -> Any:
    """``WebDriverWait.until`` with a message saying what the page failed to do."""
    return wait(driver, timeout).until(condition, message)


def submit_and_wait_for_new_page(driver: WebDriver, button: Any, what: str) -> None:
    """Click a button that loads a new document, and wait until that document is there.

    Checking elements while the old document is torn down races with ChromeDriver
    ("Node with given id does not belong to the document"), so the old document is
    marked first and the wait is on plain script until the mark has gone.
    """
    driver.execute_script("document.documentElement.setAttribute('data-ft-old', '1')")
    button.click()
    until(driver, lambda d: d.execute_script(
        "return !document.documentElement.hasAttribute('data-ft-old')"
        " && document.readyState === 'complete'"), f"no new page after {what}")


def messages(driver: WebDriver) -> list[list[str | None]]:
    """``[data-id, author, text]`` of every shown message, top to bottom."""
    return driver.execute_script(MESSAGES_JS)


def ids_of(driver: WebDriver, text: str) -> list[str]:
    """The data-id of every li whose .text is exactly ``text`` (more than one = duplicate)."""
    return [mid for mid, _author, body in messages(driver) if body == text]


def wait_for_message(driver: WebDriver, text: str, timeout: float = WAIT) -> str:
    """Wait until ``text`` is shown; return its data-id."""
    found = until(driver, lambda d: ids_of(d, text),
                  f"message {text!r} never appeared in #messages", timeout)
    return found[0]


def open_room(driver: WebDriver, base_url: str, slug: str, nick: str | None = None) -> None:
    """Open a room; pick ``nick`` in the nick chooser if given (as a first-time visitor)."""
    driver.get(f"{base_url}/rooms/{slug}/")
    until(driver, EC.presence_of_element_located((By.CSS_SELECTOR, f'body[data-room="{slug}"]')),
          f"room page of {slug!r} did not load")
    if nick is None:
        return
    field = until(driver, EC.visibility_of_element_located((By.CSS_SELECTOR, "#nick-form #nick")),
                  "the nick chooser #nick-form was not shown to a new visitor")
    field.send_keys(nick)
    submit_and_wait_for_new_page(
        driver, driver.find_element(By.CSS_SELECTOR, "#nick-form [type=submit], #nick-form button"),
        f"picking nick {nick!r}")
    until(driver, EC.visibility_of_element_located((By.CSS_SELECTOR, "#message-form")),
          f"the message form did not show after picking nick {nick!r}")
    until(driver, EC.invisibility_of_element_located((By.CSS_SELECTOR, "#nick-form")),
          "the nick chooser stayed after picking a nick")


def type_message(driver: WebDriver, text: str, *, enter: bool = False) -> None:
    """Type ``text`` and send it with the button (or the Enter key)."""
    box = until(driver, EC.element_to_be_clickable((By.CSS_SELECTOR, "textarea#message-text")),
                "the message box is not usable")
    box.send_keys(text)
    if enter:
        box.send_keys(Keys.ENTER)
    else:
        until(driver, EC.element_to_be_clickable((By.CSS_SELECTOR, "button#send")),
              "the send button is not usable").click()


def status_is(state: str, text: str | None = None) -> Any:
    """Condition: ``#status`` has ``data-state=state`` (and contains ``text``)."""

    def check(driver: WebDriver) -> bool:
        status = driver.find_element(By.ID, "status")
        if status.get_attribute("data-state") != state:
            return False
        return text is None or text in status.get_attribute("textContent")

    return check

"""What a chat page is expected to do: links, day dividers, date-times on hover, the
"new messages" cue and unread count, the character counter (Chromium, 1200 and 390 px)."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from functional_tests.browser import LIVE, open_room, type_message, until, wait_for_message
from tests.helpers.proc import manage

LINKS_JS = """
return Array.from(document.querySelectorAll('#messages li.message .text a')).map(
  function (a) { return [a.getAttribute('href'), a.getAttribute('rel'), a.textContent]; });
"""


def test_links_days_unread_cue_and_counter(chat_server, new_room, browser, other_browser):
    ann, bob = browser, other_browser
    # Two days of history: one message two days ago, then many today.
    code = ("from datetime import timedelta\n"
            "from django.utils import timezone\n"
            "from chatsite.rooms.models import Message, Room\n"
            f"room = Room.objects.get(slug={new_room!r})\n"
            "m = Message.objects.create(room=room, author='old', text='from the past')\n"
            "Message.objects.filter(pk=m.pk).update(created=timezone.now() - timedelta(days=2))\n")
    manage("shell", "-c", code, env=chat_server.env)
    chat_server.post_many(new_room, [f"filler {i}" for i in range(40)])

    open_room(ann, chat_server.url(""), new_room, "ann")
    open_room(bob, chat_server.url(""), new_room, "bob")
    assert len(ann.find_elements(By.CSS_SELECTOR, "#messages li.day-divider")) == 2
    title = ann.find_element(By.CSS_SELECTOR, "#messages li.message time").get_attribute("title")
    assert any(str(year) in title for year in range(2020, 2100)), title  # a full date

    text = ("see https://example.com/a?b=1, or javascript:alert(1) "
            "and <b>http://x.test/</b> ftp://files.test/")
    type_message(bob, text)
    wait_for_message(ann, text, timeout=LIVE)
    assert ann.execute_script(LINKS_JS) == [
        ["https://example.com/a?b=1", "noopener nofollow", "https://example.com/a?b=1"],
        ["http://x.test/", "noopener nofollow", "http://x.test/"],  # "<" ends a link
    ]
    assert not ann.execute_script("return window.__pwned")

    # Scrolled up: a message from someone else shows the cue and counts in the title.
    ann.execute_script("document.getElementById('messages').scrollTop = 0")
    type_message(bob, "while you were up there")
    wait_for_message(ann, "while you were up there", timeout=LIVE)
    until(ann, lambda d: d.title.startswith("(1) "), "no unread count in the title")
    cue = ann.find_element(By.ID, "new-messages")
    assert cue.is_displayed()
    cue.click()
    until(ann, lambda d: not d.title.startswith("("), "the unread count stayed")
    assert not cue.is_displayed()

    # The counter shows near the limit (2000) and warns past it.
    ann.execute_script("var t = document.getElementById('message-text');"
                       "t.value = 'x'.repeat(1700); t.dispatchEvent(new Event('input'));")
    counter = ann.find_element(By.ID, "char-count")
    assert counter.text == "1700 / 2000"
    ann.execute_script("var t = document.getElementById('message-text');"
                       "t.value = 'x'.repeat(2001); t.dispatchEvent(new Event('input'));")
    assert "over" in counter.get_attribute("class")

    # A phone-sized window keeps the conversation usable.
    ann.set_window_size(390, 844)
    type_message(bob, "on a phone")
    wait_for_message(ann, "on a phone", timeout=LIVE)
    assert ann.find_element(By.ID, "message-text").is_displayed()

    # The demo lives inside the site's layout and shows each chunk as it streams.
    ann.get(chat_server.url("/demo/page/"))
    until(ann, lambda d: "Done" in d.find_element(By.ID, "demo-status").text,
          "the demo stream never finished", timeout=LIVE)
    chunks = [li.text.split(" (")[0] for li in ann.find_elements(By.CSS_SELECTOR,
                                                                "#demo-chunks li")]
    assert chunks == ["First content", "stage1", "stage2", "stage3", "last_stage4"]
    assert ann.find_element(By.LINK_TEXT, "Back to the rooms").is_displayed()

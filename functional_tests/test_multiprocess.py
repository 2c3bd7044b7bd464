"""Two server processes behind one site: Redis carries the wake-ups between them."""

from __future__ import annotations

import uuid

import pytest

from functional_tests.browser import LIVE, ids_of, open_room, type_message, wait_for_message


@pytest.mark.multiprocess
def test_message_crosses_between_two_server_processes(server_pair, browser, other_browser):
    """With several processes a long-poll parked in one must still wake for a post in
    the other, at once rather than at its next timeout."""
    one, two = server_pair
    ann, bob = browser, other_browser
    # A room name no other test on this Redis uses: only our posts can wake our pages.
    slug = f"ft-multi-{uuid.uuid4().hex[:12]}"
    one.create_room(slug, "Across processes")
    open_room(ann, one.url(""), slug, "ann")
    open_room(bob, two.url(""), slug, "bob")

    type_message(ann, "from process one")
    wait_for_message(bob, "from process one", timeout=LIVE)

    type_message(bob, "from process two")
    wait_for_message(ann, "from process two", timeout=LIVE)

    for page in (ann, bob):
        wait_for_message(page, "from process one")
        assert len(ids_of(page, "from process one")) == 1
        assert len(ids_of(page, "from process two")) == 1

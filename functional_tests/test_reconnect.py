"""The page survives a server restart and catches up from the database."""

from __future__ import annotations

from functional_tests.browser import (
    ids_of,
    open_room,
    status_is,
    type_message,
    until,
    wait_for_message,
)

# The page retries after 1, 2, 4, 8, 10 s: after a restart it may wait up to 10 s.
RECONNECT = 30.0


def test_message_posted_while_server_is_down_shows_after_restart(own_server, browser):
    """A deploy or crash must not lose messages: the page says it is reconnecting,
    then fetches what was posted meanwhile, once, and says it is online again."""
    base = own_server.url("")
    open_room(browser, base, "lobby", "ann")
    until(browser, status_is("online"), "#status is not online on a fresh page")

    own_server.stop()
    until(browser, status_is("offline", "Reconnecting…"),
          "#status did not go offline / 'Reconnecting…' when the server stopped")

    own_server.post_message("lobby", "posted while you were away", nick="operator")
    own_server.start()  # same port, same database

    until(browser, lambda d: ids_of(d, "posted while you were away"),
          "the message posted while the server was down never showed", RECONNECT)
    until(browser, status_is("online"), "#status did not come back online", RECONNECT)
    assert browser.current_url == f"{base}/rooms/lobby/", "the page was reloaded"
    assert len(ids_of(browser, "posted while you were away")) == 1, "shown more than once"
    # And the page works again: sending goes through after the restart.
    type_message(browser, "back again")
    wait_for_message(browser, "back again")
    assert len(ids_of(browser, "posted while you were away")) == 1, "shown more than once"


def test_a_page_whose_database_was_reset_starts_over(own_server, browser):
    """A page whose cursor is ahead of the site (the database was reset under it) gets a
    400 from its long-poll and reloads, instead of retrying a dead cursor for ever."""
    base = own_server.url("")
    own_server.post_message("lobby", "from the old database", nick="operator")
    open_room(browser, base, "lobby", "ann")
    wait_for_message(browser, "from the old database")
    browser.execute_script("window.beforeReset = true;")

    own_server.stop()
    own_server.db_path.unlink()
    own_server.migrate()  # a fresh database: no message, the newest id is 0
    own_server.start()

    until(browser, lambda d: d.execute_script("return window.beforeReset === undefined;"),
          "the page did not reload after its cursor was refused", RECONNECT)
    until(browser, status_is("online"), "#status did not come back online", RECONNECT)
    assert not ids_of(browser, "from the old database"), "the page kept the old state"

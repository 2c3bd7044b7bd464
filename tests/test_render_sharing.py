"""Waiters woken together share the work of their answers.

A staged renderer's ``prepare`` runs once per wake-up whatever the waiters' cursors,
equal answers are rendered once, and the chat's renderers turn one wake-up of a
thousand pages with a thousand different cursors into a few queries.  The waiters
here are real ``wait_for_events`` coroutines driven the way the comet server drives
them (the hub delivers at once: no server, no threads).
"""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chatsite.rooms import presence, queries, services, updates
from chatsite.rooms.models import Message, Room
from comet_server import wait_for_events
from comet_server.push.events import Delivery, Event
from comet_server.push.hub import Hub
from comet_server.push.waits import Status

N = 1000


class Parked:
    """A long-poll parked on the hub; ``body`` is its answer once woken."""

    def __init__(self, hub: Hub, channel: str, after: int, render) -> None:
        self.after = after
        self.body: bytes | None = None
        self.status = "200 OK"
        response = wait_for_events([channel], after=after, render=render, timeout=25)
        self.coroutine = response.comet_coroutine()
        wait = self.coroutine.send(None)
        self.watch = hub.watch(wait.channels, wait.after, self.wake)
        assert self.watch is not None, "parked behind events already in the history"

    def wake(self, delivery: Delivery) -> None:
        item = self.coroutine.send(delivery)
        if isinstance(item, Status):  # a refusal: the status, then the body
            self.status = item.line
            item = next(self.coroutine)
        self.body = item

    def answer(self) -> dict:
        assert self.body is not None, "not woken"
        return json.loads(self.body)


def park_all(hub: Hub, channel: str, cursors, render) -> list[Parked]:
    return [Parked(hub, channel, after, render) for after in cursors]


def time_out_all(parked: list[Parked]) -> None:
    """What the server does to long-polls timing out in one loop turn: one shared
    empty delivery."""
    shared = Delivery([])
    for poll in parked:
        poll.wake(shared)


class CountingRenderer:
    """A staged renderer that counts its calls; its answer depends on ``after`` only
    through ``after // bucket``."""

    def __init__(self, bucket: int = 1) -> None:
        self.bucket = bucket
        self.prepared = 0
        self.rendered = 0

    def prepare(self, events: list[Event]) -> str:
        self.prepared += 1
        return ",".join(str(e.payload) for e in events)

    def answer_key(self, prepared: str, after: int) -> int:
        return after // self.bucket

    def render_prepared(self, prepared: str, events: list[Event], after: int) -> bytes:
        self.rendered += 1
        return json.dumps({"seen": prepared, "bucket": after // self.bucket}).encode()


# -- the renderer protocol, without Django's database --------------------------------

def test_prepare_runs_once_per_wake_up_whatever_the_cursors(fresh_hub):
    render = CountingRenderer()
    parked = park_all(fresh_hub, "c", range(N), render)
    fresh_hub.publish("c", "ping")  # a signal: the hub builds one events list per cursor
    assert render.prepared == 1
    assert render.rendered == N  # every cursor's answer differs
    assert [p.answer() for p in parked[:2]] == [{"seen": "ping", "bucket": 0},
                                                {"seen": "ping", "bucket": 1}]


def test_equal_answers_share_one_render(fresh_hub):
    render = CountingRenderer(bucket=100)
    parked = park_all(fresh_hub, "c", range(N), render)
    fresh_hub.publish("c", "ping")
    assert (render.prepared, render.rendered) == (1, N // 100)
    assert parked[0].body is parked[99].body  # the same bytes, not a copy
    assert parked[0].body != parked[100].body


def test_different_events_are_prepared_separately(fresh_hub):
    render = CountingRenderer()
    low = park_all(fresh_hub, "c", [0], render)
    high = park_all(fresh_hub, "c", [1], render)
    fresh_hub.publish("c", "a", cursor=1)
    fresh_hub.publish("c", "b", cursor=2)  # without a scheduler: two wake-ups
    assert low[0].answer() == {"seen": "a", "bucket": 0}
    assert high[0].answer() == {"seen": "b", "bucket": 1}
    assert render.prepared == 2


def test_a_timeout_turn_prepares_once(fresh_hub):
    render = CountingRenderer()
    parked = park_all(fresh_hub, "c", range(N), render)
    time_out_all(parked)
    assert render.prepared == 1 and render.rendered == N
    assert parked[5].answer() == {"seen": "", "bucket": 5}


def test_plain_renderers_still_share_per_cursor(fresh_hub):
    calls: list[int] = []

    def render(events, after):
        calls.append(after)
        return b"%d:%d" % (len(events), after)

    parked = park_all(fresh_hub, "c", [0, 0, 0, 7, 7], render)
    fresh_hub.publish("c", "x", cursor=9)
    assert sorted(calls) == [0, 7]
    assert [p.body for p in parked] == [b"1:0"] * 3 + [b"1:7"] * 2


# -- the chat ------------------------------------------------------------------------

@pytest.fixture
def rooms(db) -> tuple[Room, int, int]:
    """The lobby room with 5 messages, and more in another room: the lobby's newest
    id is far below the site's newest, so cursors between them are all accepted."""
    lobby, other = Room.objects.get(slug="lobby"), Room.objects.get(slug="random")
    Message.objects.bulk_create(Message(room=lobby, author="a", text=str(i)) for i in range(5))
    Message.objects.bulk_create(Message(room=other, author="b", text=str(i))
                                for i in range(N + 5))
    return lobby, queries.newest_message_id(lobby.id), queries.latest_message_id()


def test_a_signal_to_a_thousand_distinct_cursors_costs_two_queries(fresh_hub, rooms):
    lobby, newest, site = rooms
    cursors = range(newest, newest + N)
    assert cursors[-1] <= site
    parked = park_all(fresh_hub, "room:lobby", cursors, updates.RoomUpdates(lobby.id))
    with CaptureQueriesContext(connection) as queries:
        presence.signal(lobby)
    assert len(queries) == 2, [q["sql"] for q in queries]  # newest id, presence
    for poll in parked:
        assert poll.answer() == {"messages": [], "cursor": poll.after, "presence": [],
                                 "typing": []}


def test_a_post_to_a_thousand_distinct_cursors_costs_three_queries(
        fresh_hub, rooms, django_capture_on_commit_callbacks):
    lobby, newest, site = rooms
    parked = park_all(fresh_hub, "room:lobby", range(newest, newest + N),
                      updates.RoomUpdates(lobby.id))
    with django_capture_on_commit_callbacks() as announce:
        message = services.post_message(lobby, "bob", "to everyone")
    with CaptureQueriesContext(connection) as queries:
        for callback in announce:  # the publishes, as after the commit
            callback()
    assert len(queries) == 3, [q["sql"] for q in queries]  # newest id, presence, latest
    first = parked[0].answer()
    assert [m["id"] for m in first["messages"]] == [message.id]
    assert first["cursor"] == message.id
    assert all(poll.body is parked[0].body for poll in parked)  # one render for all


def test_a_page_far_behind_reads_its_own_batch(fresh_hub, rooms):
    lobby, newest, _ = rooms
    Message.objects.bulk_create(Message(room=lobby, author="c", text=str(i))
                                for i in range(updates.TAIL + 10))
    ids = list(lobby.messages.order_by("id").values_list("id", flat=True))
    render = updates.RoomUpdates(lobby.id)
    # Parked by hand at old cursors (the view would have answered them at once).
    behind = park_all(fresh_hub, "room:lobby", [0, ids[-updates.TAIL - 3], ids[-2]], render)
    presence.signal(lobby)
    assert [m["id"] for m in behind[0].answer()["messages"]] == ids
    assert [m["id"] for m in behind[1].answer()["messages"]] == ids[-updates.TAIL - 2:]
    assert [m["id"] for m in behind[2].answer()["messages"]] == ids[-1:]
    assert behind[2].answer()["cursor"] == ids[-1]


def test_a_timeout_turn_of_a_thousand_room_polls_costs_two_queries(fresh_hub, rooms):
    lobby, newest, _ = rooms
    parked = park_all(fresh_hub, "room:lobby", range(newest, newest + N),
                      updates.RoomUpdates(lobby.id))
    with CaptureQueriesContext(connection) as queries:
        time_out_all(parked)
    assert len(queries) == 2
    assert parked[-1].answer()["cursor"] == newest + N - 1


def test_the_typing_nicks_of_the_wake_up_are_in_every_answer(fresh_hub, rooms):
    lobby, newest, _ = rooms
    parked = park_all(fresh_hub, "room:lobby", [newest, newest + 1],
                      updates.RoomUpdates(lobby.id))
    fresh_hub.publish("room:lobby", {"type": "typing", "nick": "zoe"})
    assert [p.answer()["typing"] for p in parked] == [["zoe"], ["zoe"]]


def test_the_lobby_renders_one_snapshot_for_a_thousand_cursors(fresh_hub, rooms):
    _, _, site = rooms
    parked = park_all(fresh_hub, "lobby", range(site - N + 1, site + 1), updates.render_lobby)
    with CaptureQueriesContext(connection) as queries:
        fresh_hub.publish("lobby", {"type": "presence", "room": "lobby"})
    assert len(queries) == 3, [q["sql"] for q in queries]  # latest id, presence, rooms
    assert all(poll.body is parked[0].body for poll in parked)  # one render
    answer = parked[0].answer()
    assert answer["cursor"] == site
    assert {r["slug"]: r["count"] for r in answer["rooms"]}["random"] == N + 5


def test_renderers_keep_their_plain_call_form(rooms):
    lobby, newest, site = rooms
    body = updates.RoomUpdates(lobby.id)([], newest - 1)
    assert [m["id"] for m in json.loads(body)["messages"]] == [newest]
    assert json.loads(updates.render_lobby([], 0))["cursor"] == site
    assert json.loads(updates.render_lobby([], 0)) == json.loads(updates.lobby_answer(0))


def test_a_private_rooms_members_share_one_prepare_and_a_removed_one_is_revoked(
        fresh_hub, rooms, django_user_model, django_capture_on_commit_callbacks):
    """Members differ only in ``viewer`` (outside the renderer's equality): the wake-up
    reads the allowed users once for all of them, and only the removed member's answer
    differs."""
    from chatsite.rooms import members

    lobby, newest, _ = rooms
    Room.objects.filter(pk=lobby.pk).update(private=True)
    users = [django_user_model.objects.create_user(f"m{i}") for i in range(100)]
    lobby.members.add(*users)
    parked = [Parked(fresh_hub, "room:lobby", newest,
                     updates.RoomUpdates(lobby.id, private=True, viewer=user.pk))
              for user in users]
    with django_capture_on_commit_callbacks() as announce:
        members.remove_member(lobby, users[0].pk)
    with CaptureQueriesContext(connection) as queries:
        for callback in announce:
            callback()
    # room: newest id, presence, allowed users; lobby (no waiters): nothing
    assert len(queries) == 3, [q["sql"] for q in queries]
    assert parked[0].answer()["revoked"] is True and parked[0].status == "403 Forbidden"
    assert all(poll.answer() == {"messages": [], "cursor": newest, "presence": [],
                                 "typing": []} for poll in parked[1:])
    assert all(poll.body is parked[1].body for poll in parked[1:])  # one render for all


def test_a_deletion_reaches_a_thousand_pages_in_four_queries(
        fresh_hub, rooms, django_capture_on_commit_callbacks):
    from chatsite.rooms import moderation

    lobby, newest, _ = rooms
    message = Message.objects.filter(room=lobby).order_by("-id").first()
    assert message is not None
    parked = park_all(fresh_hub, "room:lobby", range(newest - 3, newest),
                      updates.RoomUpdates(lobby.id, changes_after=0))
    parked += park_all(fresh_hub, "room:lobby", [newest] * N,
                       updates.RoomUpdates(lobby.id, changes_after=0))
    with django_capture_on_commit_callbacks() as announce:
        moderation.delete_message(message)
    with CaptureQueriesContext(connection) as queries:
        for callback in announce:
            callback()
    # newest id, presence, the recent changes, and the latest messages (for the pages
    # behind): the same four whatever the number of pages
    assert len(queries) == 4, [q["sql"] for q in queries]
    for poll in parked:
        [change] = poll.answer()["changes"]
        assert change["message"] == {"id": message.id, "deleted": True}
    assert all(poll.body is parked[3].body for poll in parked[3:])  # one render for all

"""The chat's event streams with Django's test client (the stream blocks its thread, so
``CHAT_STREAM_LIFETIME`` is short): cursor checks, replay, resync, frames, presence
leases, and the per-process ledger that makes message frames fill gaps."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from chatsite.rooms import presence, services, stream_frames, streams
from chatsite.rooms.models import Message, Presence, Room
from chatsite.rooms.presence import Leases
from chatsite.rooms.stream_frames import Ledger, RoomFrames
from comet_server import Event, StreamEnd

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def short_streams(settings: Any) -> None:
    settings.CHAT_STREAM_LIFETIME = 0.3


@pytest.fixture
def room() -> Room:
    return Room.objects.get(slug="random")


@pytest.fixture
def ann() -> Client:
    client = Client()
    assert client.post("/rooms/random/nick", {"nick": "ann"}).status_code == 302
    return client


def parse(body: bytes) -> list[dict[str, str]]:
    """The events of a text/event-stream body: ``{"id"?, "event", "data"}`` each."""
    events = []
    for block in body.decode().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if "data" in fields:
            fields.setdefault("event", "message")
            events.append(fields)
    return events


def stream(client: Client, url: str, **headers: str) -> list[dict[str, str]]:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"] == "no-store"
    return parse(b"".join(response.streaming_content))


def post(room: Room, *texts: str) -> list[int]:
    return [services.post_message(room, "bob", text).id for text in texts]


@pytest.mark.parametrize("query", ["", "?after=", "?after=x", "?after=-1", "?after=1.0"])
def test_a_bad_cursor_is_a_400_json(ann: Client, query: str) -> None:
    response = ann.get(f"/rooms/random/events{query}")
    assert response.status_code == 400
    assert response.json()["error"].startswith("after: ")
    assert ann.get(f"/rooms/events{query}").status_code == 400


def test_a_cursor_above_the_newest_message_is_a_400(ann: Client, room: Room) -> None:
    [newest] = post(room, "only")
    response = ann.get(f"/rooms/random/events?after={newest + 1}")
    assert response.status_code == 400
    assert "above the newest" in response.json()["error"]
    # Last-Event-ID is checked the same way (a browser resuming after a reset).
    response = ann.get("/rooms/random/events?after=0", headers={"Last-Event-ID": "99999"})
    assert response.status_code == 400
    assert ann.get("/rooms/nope/events?after=0").status_code == 404


def test_a_room_stream_starts_ready_then_replays_what_the_page_missed(ann: Client,
                                                                     room: Room) -> None:
    first, second, third = post(room, "one", "<b>two</b>", "three\nlines")
    events = stream(ann, f"/rooms/random/events?after={first}")
    assert events[0]["event"] == "ready" and "id" not in events[0]
    ready = json.loads(events[0]["data"])
    assert ready == {"presence": ["ann"], "cursor": third}  # the stream holds ann present
    replayed = events[1:]
    assert [e["id"] for e in replayed] == [str(second), str(third)]
    assert all(e["event"] == "messages" for e in replayed)
    texts = [m["text"] for e in replayed for m in json.loads(e["data"])["messages"]]
    assert texts == ["<b>two</b>", "three\nlines"]  # verbatim: the page inserts text


def test_last_event_id_wins_over_the_query(ann: Client, room: Room) -> None:
    first, second = post(room, "one", "two")
    events = stream(ann, "/rooms/random/events?after=0", **{"Last-Event-ID": str(first)})
    assert [e.get("id") for e in events] == [None, str(second)]


def test_a_page_too_far_behind_gets_resync_and_no_replay(ann: Client, room: Room,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "MAX_BATCH", 2)
    ids = post(room, "a", "b", "c")
    events = stream(ann, "/rooms/random/events?after=0")
    assert [e["event"] for e in events] == ["ready", "resync"]
    assert json.loads(events[0]["data"])["cursor"] == ids[-1]
    assert events[1]["data"] == "{}"
    # One message fewer than the limit is replayed.
    assert [e.get("id") for e in stream(ann, f"/rooms/random/events?after={ids[0]}")] \
        == [None, str(ids[1]), str(ids[2])]


def test_the_lobby_stream_starts_with_a_snapshot(ann: Client, room: Room) -> None:
    [newest] = post(room, "counted")
    events = stream(ann, "/rooms/events?after=0")
    assert events[0]["event"] == "rooms" and "id" not in events[0]
    data = json.loads(events[0]["data"])
    assert data["cursor"] == newest
    counts = {r["slug"]: r["count"] for r in data["rooms"]}
    assert counts["random"] == 1


def test_the_pages_get_the_stream_urls_and_the_fallback_delay(ann: Client,
                                                              settings: Any) -> None:
    settings.CHAT_STREAM_FIRST_EVENT_SECONDS = 1.5
    page = ann.get("/rooms/random/").content.decode()
    assert 'data-first-event-ms="1500"' in page and 'id="transport"' in page
    assert "comet_server/comet.js" in page
    lobby = ann.get("/").content.decode()
    assert 'data-events-url="/rooms/events"' in lobby and 'data-first-event-ms="1500"' in lobby


# -- frames ------------------------------------------------------------------------------


def frame(render: Any, event: Event) -> tuple[str | None, Any]:
    result = render(event)
    return (None, None) if result is None else (result.event, json.loads(result.data))


def test_a_message_frame_fills_the_gap_from_the_database(room: Room,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """10 then 11 committed, but 11's event arrives first (another process published
    it sooner) or 10's was lost: frame 11 carries both; a late 10 carries itself only
    (streams past 10 skip it); a re-delivery gets the same frame."""
    ledger = Ledger()
    monkeypatch.setattr(stream_frames, "ledger", ledger)
    before, ten, eleven = post(room, "before", "ten", "eleven")
    ledger.opened(room.id, before)
    render = RoomFrames(room.id)
    message = {m.id: m.as_json() for m in Message.objects.filter(room=room)}

    def published(cursor: int) -> Event:
        return Event("room:random", {"type": "message", "message": message[cursor]}, cursor)

    name, data = frame(render, published(eleven))
    assert name == "messages"
    assert [m["id"] for m in data["messages"]] == [ten, eleven]
    assert frame(render, published(ten))[1]["messages"] == [message[ten]]
    assert frame(render, published(eleven))[1]["messages"] == [message[ten], message[eleven]]
    # Caught up: the next frame is the next message alone.
    [twelve] = post(room, "twelve")
    message[twelve] = Message.objects.get(id=twelve).as_json()
    assert [m["id"] for m in frame(render, published(twelve))[1]["messages"]] == [twelve]
    # The last stream of the room closes: the room is forgotten by this process.
    ledger.closed(room.id)
    assert ledger.open_rooms() == 0


def test_a_frame_over_too_large_a_gap_is_a_resync(room: Room,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger()
    monkeypatch.setattr(stream_frames, "ledger", ledger)
    monkeypatch.setattr(stream_frames, "MAX_BATCH", 2)
    ledger.opened(room.id, 0)
    ids = post(room, "a", "b", "c")
    result = RoomFrames(room.id)(Event("room:random", {"type": "message"}, ids[-1]))
    assert result is not None and result.event == "resync"


def test_signals_become_presence_and_typing_frames(room: Room) -> None:
    Presence.objects.create(room=room, nick="zoe")
    render = RoomFrames(room.id)
    assert frame(render, Event("room:random", {"type": "presence"})) \
        == ("presence", {"presence": ["zoe"]})
    assert frame(render, Event("room:random", {"type": "typing", "nick": "zoe"})) \
        == ("typing", {"nick": "zoe"})
    assert frame(render, Event("room:random", {"type": "unknown"})) == (None, None)
    assert RoomFrames(room.id) == render and hash(RoomFrames(room.id)) == hash(render)


# -- presence ------------------------------------------------------------------------------


def test_a_stream_holds_presence_for_its_lifetime_and_lets_it_lapse_after(room: Room) -> None:
    leases = Leases()
    start = timezone.now()
    leases.take(room, "ann", 300)
    row = Presence.objects.get(room=room, nick="ann")
    assert row.last_seen >= start + timedelta(seconds=299)  # far past the 40 s window
    leases.take(room, "ann", 300)  # a second tab of ann, in this process
    leases.release(room.id, "ann")
    assert Presence.objects.get(room=room, nick="ann").last_seen > timezone.now()  # still held
    leases.release(room.id, "ann")
    row = Presence.objects.get(room=room, nick="ann")
    assert start <= row.last_seen <= timezone.now()  # lapses after the window, no flapping
    assert leases.held() == 0


def test_a_drained_stream_keeps_its_lease_and_writes_nothing(room: Room, monkeypatch) -> None:
    """A drain ends thousands of streams at once and their pages reopen them elsewhere:
    no presence write each; a page that went away (or whose stream ended for another
    reason) gives its lease up as before."""
    leases = Leases()
    monkeypatch.setattr(presence, "leases", leases)
    leases.take(room, "ann", 300)
    leases.take(room, "bob", 300)
    streams.stream_closed(room.id, "ann", StreamEnd.DRAIN)
    assert Presence.objects.get(room=room, nick="ann").last_seen \
        > timezone.now() + timedelta(seconds=200)
    streams.stream_closed(room.id, "bob", None)
    assert Presence.objects.get(room=room, nick="bob").last_seen <= timezone.now()


def test_a_later_lease_is_not_cut_by_an_earlier_stream_closing(room: Room) -> None:
    here, elsewhere = Leases(), Leases()  # two processes
    here.take(room, "ann", 100)
    elsewhere.take(room, "ann", 300)
    here.release(room.id, "ann")
    assert Presence.objects.get(room=room, nick="ann").last_seen \
        > timezone.now() + timedelta(seconds=200)


def test_opening_a_stream_signals_a_newcomer_once(room: Room, fresh_hub: Any) -> None:
    Presence.objects.filter(room=room).delete()
    leases = Leases()
    leases.take(room, "bob", 300)
    assert fresh_hub.published_total == 2  # a presence signal to the room and the lobby
    leases.take(room, "bob", 300)  # already present: no signal
    assert fresh_hub.published_total == 2


# -- access and moderation (the rules of the identity work) --------------------------------


def login(name: str) -> Client:
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.create_user(name, password="a-Long-pass-4242"))
    return client


@pytest.fixture
def secret() -> Room:
    olga = login("olga")
    assert olga.post("/", {"slug": "secret", "title": "Secret", "private": "on"}).status_code \
        == 302
    return Room.objects.get(slug="secret")


def test_a_private_room_stream_is_for_its_members_only(secret: Room) -> None:
    services.post_message(secret, "olga", "psst")
    for outsider in (Client(), login("sam")):
        assert outsider.get("/rooms/secret/events?after=0").status_code == 404
        lobby = stream(outsider, "/rooms/events?after=0")
        assert "secret" not in [r["slug"] for r in json.loads(lobby[0]["data"])["rooms"]]
    olga = Client()
    olga.force_login(secret.owner)
    events = stream(olga, "/rooms/secret/events?after=0")
    assert json.loads(events[1]["data"])["messages"][0]["text"] == "psst"
    lobby = stream(olga, "/rooms/events?after=0")
    assert "secret" in [r["slug"] for r in json.loads(lobby[0]["data"])["rooms"]]


def test_moderation_changes_are_replayed_and_framed(ann: Client, room: Room) -> None:
    from chatsite.rooms import moderation

    first, spam = post(room, "fine", "spam")
    change = moderation.delete_message(Message.objects.get(id=spam))
    assert change is not None
    # A page that had no change yet gets it right after ready; the replayed message
    # is a tombstone.
    events = stream(ann, f"/rooms/random/events?after={first}&changes=0")
    assert [e["event"] for e in events] == ["ready", "changes", "messages"]
    [replayed_change] = json.loads(events[1]["data"])["changes"]
    assert replayed_change["id"] == change.id and replayed_change["type"] == "deleted"
    assert json.loads(events[2]["data"])["messages"] == [{"id": spam, "deleted": True}]
    # A page that has it gets nothing again; a bad cursor is a 400.
    events = stream(ann, f"/rooms/random/events?after={spam}&changes={change.id}")
    assert [e["event"] for e in events] == ["ready"]
    assert ann.get("/rooms/random/events?after=0&changes=x").status_code == 400
    # Live: the published signal becomes a changes frame (read back once per event).
    render = RoomFrames(room.id)
    name, data = frame(render, Event("room:random", {"type": "deleted", "id": change.id,
                                                     "message": spam}))
    assert name == "changes" and data["changes"] == [replayed_change]
    assert frame(render, Event("room:random", {"type": "membership"})) == ("membership", {})

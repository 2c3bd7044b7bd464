"""The chat's HTTP API with Django's test client: status codes, validation, JSON shape."""

import json
from datetime import datetime

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chatsite.rooms.models import Message, Room

pytestmark = pytest.mark.django_db



@pytest.fixture
def room() -> Room:
    return Room.objects.get(slug="lobby")


@pytest.fixture
def ann() -> Client:
    client = Client()
    assert client.post("/rooms/lobby/nick", {"nick": "ann"}).status_code == 302
    return client


def post(client: Client, text: str, **extra: str):
    return client.post("/rooms/lobby/messages", {"text": text, **extra})


def test_data_migration_created_two_rooms():
    assert set(Room.objects.values_list("slug", "title")) >= {
        ("lobby", "General"), ("random", "Random")}


def test_post_answers_201_with_the_message(ann):
    response = post(ann, "hello")
    assert response.status_code == 201
    data = response.json()
    assert set(data) == {"id", "author", "text", "created"}
    assert data["author"] == "ann" and data["text"] == "hello"
    assert datetime.fromisoformat(data["created"]).tzinfo is not None
    stored = Message.objects.get(pk=data["id"])
    assert (stored.room.slug, stored.author, stored.text) == ("lobby", "ann", "hello")


def test_nick_field_is_accepted_once_and_kept_in_the_session():
    client = Client()
    assert post(client, "hi", nick="  zoe ").json()["author"] == "zoe"
    assert post(client, "again", nick="someone-else").json()["author"] == "zoe"


def test_logged_in_user_posts_under_their_username():
    user = get_user_model().objects.create_user("carol", password="pw-not-used")
    client = Client()
    client.force_login(user)
    data = post(client, "hi", nick="ignored").json()
    assert data["author"] == "carol"
    assert Message.objects.get(pk=data["id"]).user == user


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "x" * 2001, "nul\x00byte"])
def test_bad_text_is_400_with_an_error(ann, text):
    response = post(ann, text)
    assert response.status_code == 400
    assert response.json()["error"]
    assert not Message.objects.exists()


def test_text_of_exactly_2000_characters_is_accepted(ann):
    assert post(ann, "y" * 2000).status_code == 201


def test_missing_text_field_is_400(ann):
    assert ann.post("/rooms/lobby/messages", {}).status_code == 400


@pytest.mark.parametrize("nick", ["", "   ", "n" * 41, "bad\nname", "bell\x07"])
def test_bad_name_is_400(nick):
    response = post(Client(), "hello", nick=nick)
    assert response.status_code == 400
    assert "error" in response.json()
    assert not Message.objects.exists()


def test_no_name_at_all_is_400():
    assert post(Client(), "hello").status_code == 400


def test_post_without_csrf_token_is_403():
    client = Client(enforce_csrf_checks=True)
    assert client.post("/rooms/lobby/messages", {"text": "hi", "nick": "ann"}).status_code == 403
    assert not Message.objects.exists()


def test_post_with_csrf_token_from_the_page_is_201():
    client = Client(enforce_csrf_checks=True)
    client.get("/rooms/lobby/")
    token = client.cookies["csrftoken"].value
    response = client.post("/rooms/lobby/messages", {"text": "hi", "nick": "ann"},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 201


@pytest.mark.parametrize("method,url", [
    ("post", "/rooms/nowhere/messages"),
    ("get", "/rooms/nowhere/messages"),
    ("get", "/rooms/nowhere/updates?after=0"),
    ("post", "/rooms/nowhere/typing"),
    ("post", "/rooms/nowhere/leave"),
    ("get", "/rooms/nowhere/events?after=0"),
    ("get", "/rooms/nowhere/"),
])
def test_unknown_room_is_404(ann, method, url):
    data = {"text": "hi"} if method == "post" else None
    response = getattr(ann, method)(url, data)
    assert response.status_code == 404
    if not url.endswith("/"):  # the JSON API and the streams answer in JSON
        assert response.json() == {"error": "No such room."}


def test_html_is_stored_verbatim_and_returned_as_json_text(ann, room):
    evil = '<script>alert("x")</script><b>bold</b> & more'
    assert post(ann, evil).json()["text"] == evil
    assert Message.objects.get().text == evil
    answer = ann.get("/rooms/lobby/updates?after=0").json()
    assert answer["messages"][0]["text"] == evil


def test_room_page_escapes_message_html(ann):
    post(ann, "<script>alert(1)</script>")
    html = ann.get("/rooms/lobby/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html


@pytest.mark.parametrize("after", [None, "", "abc", "-1", "1.5", " 1", "1e3", "0x10", "٣"])
def test_updates_with_a_bad_after_is_400(ann, after):
    url = "/rooms/lobby/updates" + ("" if after is None else f"?after={after}")
    response = ann.get(url) if after is None else ann.get("/rooms/lobby/updates", {"after": after})
    assert response.status_code == 400, url
    assert "error" in response.json()


def test_updates_after_zero_returns_everything_in_order(ann, room):
    ids = [post(ann, f"m{i}").json()["id"] for i in range(5)]
    answer = ann.get("/rooms/lobby/updates?after=0").json()
    assert [m["id"] for m in answer["messages"]] == ids
    assert [m["text"] for m in answer["messages"]] == [f"m{i}" for i in range(5)]
    assert answer["cursor"] == ids[-1]


def test_updates_resume_after_an_id(ann):
    ids = [post(ann, f"m{i}").json()["id"] for i in range(5)]
    answer = ann.get(f"/rooms/lobby/updates?after={ids[2]}").json()
    assert [m["id"] for m in answer["messages"]] == ids[3:]
    assert answer["cursor"] == ids[-1]


def test_updates_only_carry_the_rooms_own_messages(ann):
    random = Client()
    random.post("/rooms/random/messages", {"text": "elsewhere", "nick": "bob"})
    mine = post(ann, "here").json()
    answer = ann.get("/rooms/lobby/updates?after=0").json()
    assert [m["id"] for m in answer["messages"]] == [mine["id"]]


def test_a_big_backlog_comes_in_capped_batches_without_gap_or_duplicate(ann, room):
    Message.objects.bulk_create(Message(room=room, author="bulk", text=str(i))
                                for i in range(1203))
    all_ids = list(room.messages.order_by("id").values_list("id", flat=True))
    seen, cursor, sizes = [], 0, []
    while len(seen) < len(all_ids):
        answer = ann.get(f"/rooms/lobby/updates?after={cursor}").json()
        assert answer["messages"], "a backlog answer is never empty"
        sizes.append(len(answer["messages"]))
        seen += [m["id"] for m in answer["messages"]]
        assert answer["cursor"] == seen[-1] > cursor
        cursor = answer["cursor"]
    assert seen == all_ids
    assert sizes == [500, 500, 203]


def test_older_messages_page_backwards(ann, room):
    Message.objects.bulk_create(Message(room=room, author="bulk", text=str(i))
                                for i in range(120))
    ids = list(room.messages.order_by("id").values_list("id", flat=True))
    latest = ann.get("/rooms/lobby/messages").json()
    assert [m["id"] for m in latest["messages"]] == ids[-50:] and latest["has_more"]
    older = ann.get(f"/rooms/lobby/messages?before={ids[-50]}").json()
    assert [m["id"] for m in older["messages"]] == ids[-100:-50] and older["has_more"]
    oldest = ann.get(f"/rooms/lobby/messages?before={ids[-100]}").json()
    assert [m["id"] for m in oldest["messages"]] == ids[:20] and not oldest["has_more"]


def test_older_messages_with_a_bad_before_is_400(ann):
    assert ann.get("/rooms/lobby/messages?before=x").status_code == 400


def test_typing_needs_a_name_and_post():
    assert Client().post("/rooms/lobby/typing").status_code == 400
    assert Client().get("/rooms/lobby/typing").status_code == 405


def test_typing_and_leave_answer_204(ann):
    assert ann.post("/rooms/lobby/typing").status_code == 204
    assert ann.post("/rooms/lobby/leave").status_code == 204
    assert Client().post("/rooms/lobby/leave").status_code == 204


def test_lobby_updates_answer_at_once_when_behind(ann):
    post(ann, "one")
    answer = json.loads(Client().get("/rooms/updates?after=0").content)
    lobby = next(r for r in answer["rooms"] if r["slug"] == "lobby")
    assert lobby["count"] == 1 and lobby["present"] == 1
    assert answer["cursor"] == Message.objects.get().id


@pytest.mark.parametrize("after", ["", "x", "-3"])
def test_lobby_updates_with_a_bad_after_is_400(after):
    assert Client().get("/rooms/updates", {"after": after}).status_code == 400

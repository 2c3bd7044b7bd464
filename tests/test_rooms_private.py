"""Private rooms: invisible (404) to non-members everywhere; members removed while
parked are answered at once; the owner manages members from the room page."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chatsite.rooms import members, services
from chatsite.rooms.models import Room
from tests.test_rooms_longpoll import DEADLINE, park

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def long_timeout(settings):
    settings.CHAT_POLL_TIMEOUT = DEADLINE


def login(name: str) -> Client:
    user = get_user_model().objects.create_user(name, password="a-Long-pass-4242")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def owner() -> Client:
    client = login("olga")
    response = client.post("/", {"slug": "secret", "title": "Secret", "private": "on"})
    assert response.status_code == 302
    return client


@pytest.fixture
def room(owner) -> Room:
    return Room.objects.get(slug="secret")


def test_a_guest_cannot_create_a_private_room():
    response = Client().post("/", {"slug": "mine", "title": "Mine", "private": "on"})
    assert response.status_code == 400
    assert not Room.objects.filter(slug="mine").exists()


@pytest.mark.parametrize("who", ["guest", "stranger"])
def test_non_members_get_404_everywhere(room, who):
    client = Client() if who == "guest" else login("sam")
    services.post_message(room, "olga", "psst")
    assert client.get("/rooms/secret/").status_code == 404
    assert client.get("/rooms/secret/messages").status_code == 404
    assert client.post("/rooms/secret/messages", {"text": "hi", "nick": "x"}).status_code == 404
    assert client.get("/rooms/secret/updates?after=0").status_code == 404
    assert client.post("/rooms/secret/typing").status_code == 404
    lobby = client.get("/").content.decode()
    assert "secret" not in lobby
    answer = json.loads(client.get("/rooms/updates?after=0").content)
    assert "secret" not in [r["slug"] for r in answer["rooms"]]


def test_members_see_and_post_and_the_owner_adds_them_from_the_page(owner, room):
    bea = login("bea")
    assert bea.get("/rooms/secret/").status_code == 404
    assert owner.post("/rooms/secret/members", {"username": "bea"}).status_code == 302
    assert bea.get("/rooms/secret/").status_code == 200
    assert bea.post("/rooms/secret/messages", {"text": "hello"}).status_code == 201
    answer = json.loads(bea.get("/rooms/updates?after=0").content)
    assert "secret" in [r["slug"] for r in answer["rooms"]]
    assert bea.post("/rooms/secret/members", {"username": "sam"}).status_code == 403


def test_adding_an_unknown_user_says_so(owner, room):
    page = owner.post("/rooms/secret/members", {"username": "nobody"}, follow=True)
    assert "No account is called" in page.content.decode()


def test_a_member_removed_while_parked_is_answered_at_the_next_event(owner, room):
    bea, cid = login("bea"), login("cid")
    for name in ("bea", "cid"):
        members.add_member(room, name)
    for client in (bea, cid):  # present first: a join would wake the other poll
        assert client.get("/rooms/secret/").status_code == 200
    bea_poll = park(bea, "/rooms/secret/updates?after=0")
    cid_poll = park(cid, "/rooms/secret/updates?after=0")
    bea_id = get_user_model().objects.get(username="bea").pk
    assert owner.post(f"/rooms/secret/members/{bea_id}/remove").status_code == 302
    assert bea_poll.result(status=403)["revoked"] is True
    assert bea.get("/rooms/secret/updates?after=0").status_code == 404
    # the member who stayed is woken by the same event with an ordinary answer
    assert "revoked" not in cid_poll.result()
    cid_poll = park(cid, "/rooms/secret/updates?after=0")
    services.post_message(room, "olga", "still here")
    assert [m["text"] for m in cid_poll.result()["messages"]] == ["still here"]


def test_lobby_updates_show_a_private_room_to_members_only(owner, room):
    bea = login("bea")
    members.add_member(room, "bea")
    assert bea.get("/rooms/secret/").status_code == 200
    guest_poll = park(Client(), "/rooms/updates?after=0")
    bea_poll = park(bea, "/rooms/updates?after=0")
    services.post_message(room, "olga", "news")
    assert "secret" in [r["slug"] for r in bea_poll.result()["rooms"]]
    assert "secret" not in [r["slug"] for r in guest_poll.result()["rooms"]]

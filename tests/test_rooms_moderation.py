"""Moderation: soft delete and edits, stored with their own ids and published, so open
pages update at once and resuming pages learn what they missed."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chatsite.rooms import moderation, services
from chatsite.rooms.models import Message, MessageChange, Room
from tests.test_rooms_longpoll import DEADLINE, park

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def long_timeout(settings):
    settings.CHAT_POLL_TIMEOUT = DEADLINE


@pytest.fixture
def room() -> Room:
    return Room.objects.get(slug="lobby")


@pytest.fixture
def staff() -> Client:
    user = get_user_model().objects.create_user("mod", password="a-Long-pass-4242",
                                                is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


def updates(client: Client, after: int, changes: int) -> dict:
    return json.loads(client.get(f"/rooms/lobby/updates?after={after}&changes={changes}")
                      .content)


def test_staff_delete_from_the_room_page_and_it_is_stored_soft(room, staff):
    message = services.post_message(room, "troll", "spam")
    assert Client().post(f"/rooms/lobby/messages/{message.id}/delete").status_code == 403
    response = staff.post(f"/rooms/lobby/messages/{message.id}/delete")
    assert response.status_code == 200 and response.json() == {"deleted": message.id}
    message.refresh_from_db()
    assert message.deleted_at is not None and message.deleted_by.username == "mod"
    change = MessageChange.objects.get()
    assert (change.kind, change.message_id, change.by.username) == ("deleted", message.id, "mod")
    assert "spam" not in Client().get("/rooms/lobby/").content.decode()
    older = Client().get("/rooms/lobby/messages").json()["messages"]
    assert older == [{"id": message.id, "deleted": True}]
    assert staff.post("/rooms/lobby/messages/999999/delete").status_code == 404


def test_a_rooms_owner_may_delete_in_their_room_only(room):
    owner_user = get_user_model().objects.create_user("own", password="a-Long-pass-4242")
    mine = Room.objects.create(slug="mine", title="Mine", owner=owner_user)
    owner = Client()
    owner.force_login(owner_user)
    here = services.post_message(mine, "x", "bad")
    there = services.post_message(room, "x", "not yours")
    assert owner.post(f"/rooms/mine/messages/{here.id}/delete").status_code == 200
    assert owner.post(f"/rooms/lobby/messages/{there.id}/delete").status_code == 403
    assert owner.post(f"/rooms/mine/messages/{there.id}/delete").status_code == 404


def test_a_parked_page_learns_of_a_deletion_at_once(room, staff):
    message = services.post_message(room, "troll", "spam")
    poll = park(Client(), f"/rooms/lobby/updates?after={message.id}&changes=0")
    staff.post(f"/rooms/lobby/messages/{message.id}/delete")
    answer = poll.result()
    assert answer["messages"] == []
    [change] = answer["changes"]
    assert change["type"] == "deleted"
    assert change["message"] == {"id": message.id, "deleted": True}


def test_a_resuming_page_learns_of_the_changes_it_missed(room):
    first = services.post_message(room, "ann", "one")
    second = services.post_message(room, "ann", "two")
    deleted = moderation.delete_message(first)
    edited = moderation.edit_message(second, "two (fixed)")
    assert deleted is not None and edited is not None and deleted.id < edited.id
    answer = updates(Client(), second.id, 0)  # answered at once: it missed two changes
    assert [(c["id"], c["type"]) for c in answer["changes"]] == [
        (deleted.id, "deleted"), (edited.id, "edited")]
    assert answer["changes"][1]["message"]["text"] == "two (fixed)"
    assert "edited" in answer["changes"][1]["message"]
    # a page that has them all parks (and a page without `changes` gets only new ones)
    poll = park(Client(), f"/rooms/lobby/updates?after={second.id}&changes={edited.id}")
    services.post_message(room, "ann", "three")
    assert "changes" not in poll.result()
    assert Client().get("/rooms/lobby/updates?after=0&changes=x").status_code == 400


def test_a_deleted_message_is_a_tombstone_that_still_moves_the_cursor(room):
    message = services.post_message(room, "ann", "oops")
    moderation.delete_message(message)
    answer = updates(Client(), 0, 10**9)
    assert answer["messages"] == [{"id": message.id, "deleted": True}]
    assert answer["cursor"] == message.id


def test_admin_delete_and_edit_go_through_moderation(room, staff):
    message = services.post_message(room, "ann", "typo")
    response = staff.post(f"/admin/rooms/message/{message.id}/change/", {"text": "fixed"})
    assert response.status_code == 302
    message.refresh_from_db()
    assert message.text == "fixed" and message.edited_at is not None
    response = staff.post(f"/admin/rooms/message/{message.id}/delete/", {"post": "yes"})
    assert response.status_code == 302
    message.refresh_from_db()
    assert message.deleted_at is not None
    assert list(MessageChange.objects.values_list("kind", flat=True)) == ["edited", "deleted"]
    assert Message.objects.filter(pk=message.pk).exists()

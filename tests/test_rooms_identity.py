"""Guest names and accounts: who may post under which name (Django's test client)."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chatsite.rooms.models import GuestName, Message, Room

pytestmark = pytest.mark.django_db


def post(client: Client, text: str, slug: str = "lobby", **extra: str):
    return client.post(f"/rooms/{slug}/messages", {"text": text, **extra})


def guest(nick: str) -> Client:
    client = Client()
    assert client.post("/rooms/lobby/nick", {"nick": nick}).status_code == 302
    return client


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("Alice", password="a-Long-pass-4242")


def test_a_session_less_post_cannot_take_a_username(alice):
    response = post(Client(), "I am Alice", nick="alice")
    assert response.status_code == 409
    assert "account" in response.json()["error"]
    assert not Message.objects.exists()


def test_a_second_guest_cannot_take_a_present_guests_name_in_any_case_or_width():
    first = guest("Zoe")
    assert post(first, "hi").json()["author"] == "Zoe"
    for taken in ("zoe", "ZOE", "Ｚｏｅ"):  # fullwidth: NFKC makes it "Zoe"
        response = post(Client(), "me too", nick=taken)
        assert response.status_code == 409, taken
        assert response.json()["error"]
    assert Message.objects.filter(author__iexact="zoe").count() == 1


def test_the_nick_form_answers_409_for_a_taken_name():
    guest("Zoe")
    response = Client().post("/rooms/lobby/nick", {"nick": "zoe"})
    assert response.status_code == 409
    assert "taken" in response.content.decode()


def test_a_guest_name_lapses_after_the_setting(settings):
    first = guest("Zoe")
    GuestName.objects.update(last_seen="2000-01-01T00:00:00Z")
    second = Client()
    assert post(second, "mine now", nick="zoe").status_code == 201
    assert post(first, "hey").status_code == 409  # the first session lost it


@pytest.mark.parametrize("nick", ["adm\u200bin", "a\u202eb", "x\u2066y", "bom\ufeff",
                                  "un\U000e0001tag", "new\u0378", "priv\ue000"])
def test_names_with_invisible_bidi_or_unassigned_characters_are_400(nick):
    response = post(Client(), "hi", nick=nick)
    assert response.status_code == 400
    assert response.json()["error"]


def test_names_are_nfkc_normalised():
    assert post(Client(), "hi", nick="ｆｕｌｌ").json()["author"] == "full"


def test_a_guest_can_change_their_name_and_frees_the_old_one():
    first = guest("Zoe")
    assert first.post("/rooms/lobby/nick", {"nick": "Zed"}).status_code == 302
    assert post(first, "renamed").json()["author"] == "Zed"
    assert post(Client(), "free again", nick="zoe").status_code == 201


def test_signup_logs_in_and_the_user_posts_under_their_username():
    client = Client()
    response = client.post("/accounts/signup/", {
        "username": "carol", "password1": "a-Long-pass-4242", "password2": "a-Long-pass-4242"})
    assert response.status_code == 302
    page = client.get("/").content.decode()
    assert 'id="nav-user">carol<' in page and 'id="nav-logout"' in page
    data = post(client, "hi", nick="someone-else").json()
    assert data["author"] == "carol"
    assert Message.objects.get(pk=data["id"]).user.username == "carol"


def test_signup_refuses_a_name_a_guest_holds_and_a_username_in_another_case(alice):
    guest("Zoe")
    for name in ("zoe", "ALICE"):
        response = Client().post("/accounts/signup/", {
            "username": name, "password1": "a-Long-pass-4242", "password2": "a-Long-pass-4242"})
        assert response.status_code == 400, name
    assert get_user_model().objects.count() == 1


def test_a_guest_may_sign_up_under_their_own_guest_name():
    """The name moves from the guest session to the account."""
    zoe = guest("Zoe")
    assert post(zoe, "as a guest").status_code == 201
    response = zoe.post("/accounts/signup/", {
        "username": "Zoe", "password1": "a-Long-pass-4242", "password2": "a-Long-pass-4242"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert post(zoe, "as a member").json()["author"] == "Zoe"
    assert not GuestName.objects.exists()
    assert post(Client(), "me too", nick="zoe").status_code == 409  # an account's now


@pytest.mark.parametrize("nick", ["Z͓͔͕͑͒o͖͙͗͘e",
                                  "́ann", "a⃝⃝⃝⃝"])
def test_zalgo_names_are_400(nick):
    response = post(Client(), "hi", nick=nick)
    assert response.status_code == 400
    assert "accent" in response.json()["error"]


@pytest.mark.parametrize("nick", ["Nguyễn", "กิ่", "שָׁ",
                                  "Zöé", "अनिल"])
def test_names_with_the_marks_real_scripts_use_are_fine(nick):
    assert post(Client(), "hi", nick=nick).status_code == 201, nick


def test_presence_is_sorted_whatever_the_case():
    from chatsite.rooms import presence

    room = Room.objects.get(slug="lobby")
    for nick in ("bob", "Cat", "ann", "Dan"):
        presence.touch(room, nick)
    assert presence.present_nicks(room.id) == ["ann", "bob", "Cat", "Dan"]


def test_login_logout_and_password_change(alice):
    client = Client()
    assert 'id="nav-login"' in client.get("/").content.decode()
    response = client.post("/accounts/login/", {"username": "Alice",
                                                "password": "a-Long-pass-4242"})
    assert response.status_code == 302
    response = client.post("/accounts/password/", {
        "old_password": "a-Long-pass-4242", "new_password1": "another-Long-pass-99",
        "new_password2": "another-Long-pass-99"})
    assert response.status_code == 302
    assert client.get("/accounts/password/done/").status_code == 200
    assert client.get("/accounts/logout/").status_code == 405  # logout is a POST
    assert client.post("/accounts/logout/").status_code == 302
    assert 'id="nav-login"' in client.get("/").content.decode()
    assert Client().login(username="Alice", password="another-Long-pass-99")


def test_logging_in_frees_the_guest_name(alice):
    client = guest("Zoe")
    assert client.post("/accounts/login/", {"username": "Alice",
                                            "password": "a-Long-pass-4242"}).status_code == 302
    assert post(client, "as myself").json()["author"] == "Alice"
    assert post(Client(), "mine", nick="zoe").status_code == 201


def test_the_pages_say_how_to_get_an_account():
    html = Client().get("/rooms/lobby/").content.decode()
    assert "/accounts/signup/" in html and "/accounts/login/" in html
    assert Client().get("/accounts/signup/").status_code == 200
    assert Client().get("/accounts/login/").status_code == 200


def test_guests_can_be_turned_off_per_room_and_site_wide(settings, alice):
    Room.objects.filter(slug="random").update(guests_allowed=False)
    response = post(Client(), "hi", slug="random", nick="zoe")
    assert response.status_code == 403 and response.json()["error"]
    assert post(Client(), "hi", nick="zoe").status_code == 201
    assert Client().post("/rooms/random/nick", {"nick": "xan"}).status_code == 403
    settings.CHAT_GUESTS = False
    assert post(Client(), "hi", nick="yan").status_code == 403
    assert "log in" in Client().get("/rooms/lobby/").content.decode()
    member = Client()
    member.force_login(alice)
    assert post(member, "users still post").status_code == 201

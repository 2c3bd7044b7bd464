"""Rate limits: 429 with Retry-After and a JSON error, per session and per address."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chatsite.rooms import limits
from chatsite.rooms.conf import rate
from chatsite.rooms.models import Message, Room

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> list[float]:
    """A clock the tests move: no window ends in the middle of a test by chance."""
    now = [1_000_000.0]
    monkeypatch.setattr(limits.time, "time", lambda: now[0])
    return now


def guest(nick: str, address: str = "10.0.0.1") -> Client:
    client = Client(REMOTE_ADDR=address)
    assert client.post("/rooms/lobby/nick", {"nick": nick}).status_code == 302
    return client


def post(client: Client, text: str):
    return client.post("/rooms/lobby/messages", {"text": text})


def assert_limited(response) -> int:
    assert response.status_code == 429
    retry = int(response["Retry-After"])
    assert 1 <= retry <= 600
    data = response.json()
    assert data["retry_after"] == retry and "try again" in data["error"]
    return retry


def test_a_script_posting_fast_is_stopped_after_ten_per_ten_seconds():
    client = guest("fast")
    answers = [post(client, f"m{i}").status_code for i in range(12)]
    assert answers == [201] * 10 + [429] * 2
    assert_limited(post(client, "again"))
    assert Message.objects.count() == 10


def test_the_limit_is_per_session_and_per_address(settings):
    settings.CHAT_RATE_POST_SESSION = "3/60"
    settings.CHAT_RATE_POST_ADDRESS = "5/60"
    one, two = guest("one"), guest("two")
    assert [post(one, "x").status_code for _ in range(4)] == [201, 201, 201, 429]
    # another session from the same address: its own 3, but the address has 5
    assert [post(two, "y").status_code for _ in range(3)] == [201, 201, 429]
    assert post(guest("three", address="10.0.0.2"), "z").status_code == 201


def test_posting_is_allowed_again_in_the_next_window(settings, clock):
    settings.CHAT_RATE_POST_SESSION = "2/10"
    now = clock
    client = guest("ann")
    assert [post(client, "x").status_code for _ in range(3)] == [201, 201, 429]
    retry = assert_limited(post(client, "x"))
    now[0] += retry
    assert post(client, "after the wait").status_code == 201


def test_room_creation_is_limited_per_address():
    client = Client(REMOTE_ADDR="10.0.0.9")
    statuses = [client.post("/", {"slug": f"room-{i}", "title": f"Room {i}"}).status_code
                for i in range(7)]
    assert statuses == [302] * 5 + [429] * 2
    response = client.post("/", {"slug": "one-more", "title": "One more"})
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert "Too many new rooms" in response.content.decode()
    assert Room.objects.filter(slug__startswith="room-").count() == 5


def test_a_user_may_own_at_most_the_setting_of_rooms(settings):
    settings.CHAT_MAX_ROOMS_PER_USER = 2
    user = get_user_model().objects.create_user("owner", password="a-Long-pass-4242")
    client = Client()
    client.force_login(user)
    assert client.post("/", {"slug": "a1", "title": "A1"}).status_code == 302
    assert client.post("/", {"slug": "a2", "title": "A2"}).status_code == 302
    response = client.post("/", {"slug": "a3", "title": "A3"})
    assert response.status_code == 400 and "own 2 rooms" in response.content.decode()


def test_name_changes_and_typing_are_limited(settings):
    settings.CHAT_RATE_NAME_SESSION = "2/60"
    settings.CHAT_RATE_TYPING_SESSION = "2/60"
    client = Client()
    assert [client.post("/rooms/lobby/nick", {"nick": f"n{i}"}).status_code
            for i in range(3)] == [302, 302, 429]
    assert [client.post("/rooms/lobby/typing").status_code for _ in range(3)] == [204, 204, 429]
    assert_limited(client.post("/rooms/lobby/typing"))


def test_typing_is_limited_per_address_across_sessions(settings):
    """A script with a fresh session per request is limited by its address."""
    settings.CHAT_RATE_TYPING_ADDRESS = "3/60"
    statuses = []
    for i in range(5):
        client = Client()
        assert client.post("/rooms/lobby/nick", {"nick": f"t{i}"}).status_code == 302
        statuses.append(client.post("/rooms/lobby/typing").status_code)
    assert statuses == [204, 204, 204, 429, 429]
    other = Client(REMOTE_ADDR="192.0.2.77")  # another address is not
    assert other.post("/rooms/lobby/nick", {"nick": "other"}).status_code == 302
    assert other.post("/rooms/lobby/typing").status_code == 204


def test_a_malformed_rate_setting_names_itself(settings):
    settings.CHAT_RATE_POST_SESSION = "ten per second"
    with pytest.raises(ValueError, match="CHAT_RATE_POST_SESSION"):
        rate("post-session")


def test_limits_fail_open_when_the_cache_is_down(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(limits.cache, "add", broken)
    client = guest("ann")
    assert all(post(client, f"m{i}").status_code == 201 for i in range(12))
    assert "rate limits not enforced" in caplog.text

"""The HTML pages: the DOM contract the browser code and the Selenium tests rely on."""

import re

import pytest
from django.test import Client

from chatsite.rooms.models import Message, Room

pytestmark = pytest.mark.django_db



def test_lobby_lists_rooms_with_counts_and_the_create_form():
    room = Room.objects.get(slug="lobby")
    Message.objects.create(room=room, author="ann", text="hi")
    html = Client().get("/").content.decode()
    assert 'id="nav-demo" href="/demo/page/"' in html
    assert '<ul id="rooms"' in html
    item = re.search(r'<li class="room" data-slug="lobby"[^>]*>(.*?)</li>', html, re.S).group(1)
    assert 'href="/rooms/lobby/"' in item
    assert '<span class="count">1</span>' in item
    assert '<span class="present">0</span>' in item
    assert '<form id="create-room"' in html
    for name in ("slug", "title", "description"):
        assert f'name="{name}"' in html


def test_creating_a_room_redirects_to_it():
    response = Client().post("/", {"slug": "book-club", "title": "Book club",
                                   "description": ""})
    assert response.status_code == 302 and response["Location"] == "/rooms/book-club/"
    assert Room.objects.get(slug="book-club").title == "Book club"
    assert Client().get("/rooms/book-club/").status_code == 200


@pytest.mark.parametrize("data,field", [
    ({"slug": "Bad Slug!", "title": "x"}, "slug"),
    ({"slug": "", "title": "x"}, "slug"),
    ({"slug": "lobby", "title": "Again"}, "slug"),
    ({"slug": "fine", "title": ""}, "title"),
    ({"slug": "fine", "title": "t" * 101}, "title"),
])
def test_bad_room_forms_show_errors(data, field):
    response = Client().post("/", {"description": "", **data})
    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    assert field in response.context["form"].errors
    assert not Room.objects.filter(title__in=["Again", "Reserved", "x"]).exists()


def test_room_page_for_a_newcomer_shows_the_nick_chooser():
    html = Client().get("/rooms/lobby/").content.decode()
    assert 'data-room="lobby"' in html
    assert '<form id="nick-form"' in html and 'id="nick"' in html
    assert "hidden" in re.search(r'<button id="load-older"[^>]*>', html).group(0)  # no history
    for fragment in ('<ul id="messages"', 'id="load-older"', '<form id="message-form"',
                     'id="message-text"', 'id="send"', 'id="error"', '<ul id="presence"',
                     'id="typing"', 'id="status"', 'data-state="online"'):
        assert fragment in html, fragment


def test_choosing_a_nick_keeps_it_and_hides_the_chooser():
    client = Client()
    assert client.post("/rooms/lobby/nick", {"nick": "ann"}).status_code == 302
    html = client.get("/rooms/lobby/").content.decode()
    assert 'id="nick-form"' not in html
    assert 'data-nick="ann"' in html
    assert '<li class="me">ann</li>' in html  # present as soon as the page loads


def test_a_bad_nick_shows_an_error():
    response = Client().post("/rooms/lobby/nick", {"nick": "x" * 41})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="nick-form"' in html and 'class="errorlist"' in html


def test_room_page_shows_the_last_50_messages_oldest_first():
    room = Room.objects.get(slug="lobby")
    Message.objects.bulk_create(Message(room=room, author="a", text=f"t{i}") for i in range(60))
    ids = list(room.messages.order_by("id").values_list("id", flat=True))
    response = Client().get("/rooms/lobby/")
    html = response.content.decode()
    shown = [int(i) for i in re.findall(r'<li class="message[^"]*" data-id="(\d+)"', html)]
    assert shown == ids[-50:]
    assert f'data-cursor="{ids[-1]}"' in html
    assert "hidden" not in re.search(r'<button id="load-older"[^>]*>', html).group(0)
    item = html.split(f'data-id="{ids[-1]}"')[1].split("</li>")[0]
    for cls in ("author", "text", "time"):
        assert f'class="{cls}"' in item


def test_static_files_are_found():
    from django.contrib.staticfiles import finders

    for path in ("vendor/jquery-3.7.1.min.js", "rooms/chat.css", "rooms/room.js",
                 "rooms/lobby.js", "rooms/live.js", "comet_server/comet.js"):
        assert finders.find(path), path


def test_the_demo_page_is_inside_the_layout_with_a_way_back():
    html = Client().get("/demo/page/").content.decode()
    assert 'class="site-nav"' in html and 'href="/demo/"' in html
    assert "Back to the rooms" in html


@pytest.mark.parametrize("path", ["/no/such/page/", "/rooms/no-such-room/"])
def test_unknown_pages_get_the_sites_own_404(settings, path):
    settings.DEBUG = False
    response = Client().get(path)
    assert response.status_code == 404
    assert 'class="site-nav"' in response.content.decode()


def test_the_pages_get_every_client_setting_from_the_server(settings):
    """The page's scripts hold no defaults: timings and limits come as data attributes."""
    settings.CHAT_POLL_TIMEOUT = 7
    room = Client().get("/rooms/lobby/").content.decode()
    body = re.search(r"<body[^>]*>", room).group(0)
    for name in ("poll-seconds", "first-event-ms", "grace-ms", "max-text", "max-nick",
                 "typing-shown-ms", "typing-every-ms"):
        assert f"data-{name}=" in body, name
    assert 'data-poll-seconds="7.0"' in body
    assert 'maxlength="40"' in room  # the nick field, from the server's MAX_NICK
    lobby = re.search(r"<body[^>]*>", Client().get("/").content.decode()).group(0)
    assert 'data-poll-seconds="7.0"' in lobby and "data-grace-ms=" in lobby

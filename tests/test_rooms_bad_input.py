"""Bad input to the chat's endpoints gets a 4xx with a short reason, never a 5xx.

Django's test client with CSRF enforced (the middleware stack of production), from
a visitor who holds a CSRF cookie and a name, so a body reaches every layer that
reads it: the CSRF check, the views, Django's own 400 handler.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatsite.rooms.models import Message, Room

pytestmark = pytest.mark.django_db

SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

# Every chat path a POST may reach (the long-poll and stream paths answer 405).
ENDPOINTS = [
    "/", "/rooms/updates", "/rooms/events", "/rooms/lobby/", "/rooms/lobby/nick",
    "/rooms/lobby/messages", "/rooms/lobby/updates", "/rooms/lobby/events",
    "/rooms/lobby/typing", "/rooms/lobby/leave", "/rooms/lobby/messages/{message}/delete",
    "/rooms/lobby/members", "/rooms/lobby/members/{user}/remove", "/rooms/nowhere/messages",
    "/accounts/signup/", "/accounts/login/", "/accounts/logout/", "/accounts/password/",
    "/demo/", "/status/",
]
CONTENT_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data",
                 "multipart/form-data; boundary=xyz", "text/plain", "application/json",
                 "application/octet-stream", ""]
CHARSETS = ["", "utf-8", "latin-1", "iso-8859-1", "utf-16", "ascii", "cp1252", "nope",
            "utf-8; boundary=", '"utf-8"']
FORMISH = st.lists(st.tuples(st.sampled_from(["text", "nick", "csrfmiddlewaretoken",
                                               "username", "password1", "x"]),
                             st.binary(max_size=40)), max_size=5).map(
    lambda pairs: b"&".join(k.encode() + b"=" + v for k, v in pairs))
MULTIPART = st.binary(max_size=60).map(
    lambda part: b"--xyz\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n"
                 + part + b"\r\n--xyz--\r\n")


@pytest.fixture
def visitor() -> Client:
    """A guest with a name, a CSRF cookie and a message to act on."""
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.get("/rooms/lobby/")
    token = client.cookies["csrftoken"].value
    assert client.post("/rooms/lobby/nick", {"nick": "fuzz", "csrfmiddlewaretoken": token},
                       ).status_code == 302
    Message.objects.create(room=Room.objects.get(slug="lobby"), author="fuzz", text="hi")
    return client


def post_raw(client: Client, path: str, body: bytes, content_type: str,
             token: bool) -> int:
    extra = {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value} if token else {}
    response = client.generic("POST", path, data=body, content_type=content_type, **extra)
    return response.status_code


@SETTINGS
@given(path=st.sampled_from(ENDPOINTS), body=st.one_of(st.binary(max_size=200), FORMISH,
                                                        MULTIPART),
       content_type=st.sampled_from(CONTENT_TYPES), charset=st.sampled_from(CHARSETS),
       token=st.booleans())
def test_random_bodies_charsets_and_types_never_get_a_5xx(visitor: Client, path: str,
                                                          body: bytes, content_type: str,
                                                          charset: str, token: bool) -> None:
    message = Message.objects.order_by("-id").values_list("id", flat=True).first()
    user = get_user_model().objects.values_list("id", flat=True).first() or 1
    path = path.format(message=message, user=user)
    if charset and content_type:
        content_type = f"{content_type}; charset={charset}"
    status = post_raw(visitor, path, body, content_type, token)
    assert status < 500, (path, content_type, body)


@pytest.mark.parametrize("token", [True, False])
def test_a_form_that_is_not_utf8_gets_400_with_its_reason(visitor: Client, token: bool) -> None:
    """Django refuses a latin-1 form where the CSRF check reads it, and again in its own
    400 handler: the client got a 500."""
    client = visitor
    extra = {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value} if token else {}
    response = client.generic(
        "POST", "/rooms/lobby/messages", data=b"text=caf\xe9",
        content_type="application/x-www-form-urlencoded; charset=latin-1", **extra)
    assert response.status_code == 400
    assert b"UTF-8" in response.content
    assert Message.objects.filter(text__startswith="caf").count() == 0

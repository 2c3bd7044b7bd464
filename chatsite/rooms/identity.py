"""Who is talking: a logged-in user's username, else the display name in the session."""

from django.contrib.auth.models import User
from django.http import HttpRequest

from chatsite.rooms.conf import MAX_NICK

SESSION_KEY = "chat_nick"


def current_nick(request: HttpRequest) -> str | None:
    """The display name of this visitor, or None when they have not picked one."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user.get_username()[:MAX_NICK]
    return request.session.get(SESSION_KEY)


def remember_nick(request: HttpRequest, nick: str) -> None:
    """Keep an anonymous visitor's chosen name for the rest of the session."""
    request.session[SESSION_KEY] = nick


def current_user(request: HttpRequest) -> User | None:
    """The logged-in user to link messages to, or None."""
    user = getattr(request, "user", None)
    return user if isinstance(user, User) and user.is_authenticated else None

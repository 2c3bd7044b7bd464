"""Guest names: a name a visitor without an account picks is theirs while their
session is active, and never one of an account's usernames.

Names are compared in their canonical form (``validation.name_key``: NFKC, case-folded),
so "Ann", "ANN" and "Ａｎｎ" are one name.  A reservation is a ``GuestName`` row held by a
session key; it lapses ``conf.guest_name_seconds()`` after the session was last seen
(each post and, at most every ``TOUCH_EVERY`` seconds, each poll refreshes it).
"""

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from chatsite.rooms.conf import guest_name_seconds
from chatsite.rooms.identity import SESSION_KEY
from chatsite.rooms.models import GuestName
from chatsite.rooms.validation import clean_nick, name_key

TOUCH_EVERY = 600.0  # seconds between refreshes of a reservation by polls
_TOUCHED = "chat_nick_touched"  # session key: when the reservation was last refreshed
_HOLDER = "chat_nick_holder"  # session key: the session key the reservation is held by


class NameTaken(Exception):
    """The name belongs to an account or to another guest's active session (409)."""


def session_key(request: HttpRequest) -> str:
    """This visitor's session key, creating the session if it has none yet."""
    if request.session.session_key is None:
        request.session.save()
    key = request.session.session_key
    assert key is not None
    return key


def is_username(nick: str) -> bool:
    """Whether an account has this name (case-insensitively)."""
    users = get_user_model().objects
    return users.filter(**{f"{users.model.USERNAME_FIELD}__iexact": nick}).exists()


def held_by_guest(nick: str, except_session: str | None = None) -> bool:
    """Whether an active guest session (other than ``except_session``) holds the name."""
    rows = GuestName.objects.filter(key=name_key(nick), last_seen__gte=_cutoff())
    if except_session is not None:
        rows = rows.exclude(session_key=except_session)
    return rows.exists()


def _cutoff() -> datetime:
    return timezone.now() - timedelta(seconds=guest_name_seconds())


def claim(request: HttpRequest, value: str | None) -> str:
    """Reserve a name for this guest's session and return it, cleaned.

    Raises ``ValueError`` (400) for a malformed name and ``NameTaken`` (409) for a name
    that is an account's or another active guest's.  The session's previous name is
    released.
    """
    nick = clean_nick(value)
    if is_username(nick):
        raise NameTaken(f"“{nick}” is the name of an account: log in as it, or pick "
                        "another name.")
    key, mine, now = name_key(nick), session_key(request), timezone.now()
    try:
        with transaction.atomic():
            row = GuestName.objects.select_for_update().filter(key=key).first()
            if row is None:
                GuestName.objects.create(key=key, name=nick, session_key=mine, last_seen=now)
            elif row.session_key != mine and row.last_seen >= _cutoff():
                raise NameTaken(f"“{row.name}” is taken by someone else here: pick "
                                "another name.")
            else:
                row.name, row.session_key, row.last_seen = nick, mine, now
                row.save(update_fields=["name", "session_key", "last_seen"])
    except IntegrityError:  # another session created it between our read and insert
        raise NameTaken(f"“{nick}” is taken by someone else here: pick another name.") \
            from None
    GuestName.objects.filter(session_key=mine).exclude(key=key).delete()
    request.session[_TOUCHED] = now.timestamp()
    request.session[_HOLDER] = mine
    return nick


def holder(request: HttpRequest) -> str | None:
    """The session key this visitor's guest name is held by, if any (so signing up
    under one's own guest name is allowed: the name moves to the account)."""
    return request.session.get(_HOLDER) or request.session.session_key


def keep_alive(request: HttpRequest, nick: str) -> None:
    """Refresh this guest's reservation, at most every ``TOUCH_EVERY`` seconds (the
    time is kept in the session: a poll costs no query when nothing is due)."""
    now = timezone.now()
    if now.timestamp() - float(request.session.get(_TOUCHED, 0)) < TOUCH_EVERY:
        return
    request.session[_TOUCHED] = now.timestamp()
    GuestName.objects.filter(key=name_key(nick), session_key=session_key(request)) \
        .update(last_seen=now)


def release(request: HttpRequest) -> None:
    """Give up the name this session holds (on login and logout: a signed-in user
    posts as themselves, and a flushed session can no longer hold anything).  The
    holder is the session key remembered at ``claim``: login changes the key."""
    holder = request.session.get(_HOLDER)
    if holder:
        GuestName.objects.filter(session_key=holder).delete()
    for name in (SESSION_KEY, _HOLDER, _TOUCHED):
        request.session.pop(name, None)

"""Who may see, post in, moderate and manage a room.

Every view that shows a room or parks on its channel asks ``can_see`` first: a private
room is answered ``404`` to anyone but its owner, its members and staff, so its
existence does not leak.  A long-poll parked by a member who is then removed is ended
by ``updates.RoomUpdates`` (a membership event on the room's channel).
"""

from typing import Any

from django.db.models import Q
from django.http import Http404, HttpRequest

from chatsite.rooms import conf
from chatsite.rooms.models import Room


def _user_id(user: Any) -> int | None:
    return user.pk if user is not None and user.is_authenticated else None


def room_or_404(request: HttpRequest, slug: str) -> Room:
    """The room ``slug`` when the visitor may see it; else ``Http404``, the same for a
    room that does not exist and one private to others (its existence does not leak).
    Pages show Django's 404; the JSON views answer it as JSON (``api.json_404``)."""
    room = Room.objects.filter(slug=slug).first()
    if room is None or not can_see(room, request.user):
        raise Http404("No such room.")
    return room


def can_see(room: Room, user: Any) -> bool:
    """Public rooms: everyone; private ones: the owner, members and staff."""
    if not room.private:
        return True
    uid = _user_id(user)
    if uid is None:
        return False
    return bool(user.is_staff or room.owner_id == uid
                or room.members.filter(pk=uid).exists())


def allowed_user_ids(room_id: int) -> frozenset[int]:
    """Users who may see a private room: owner, members, staff (one query)."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    rows = users.filter(Q(is_staff=True) | Q(owned_rooms__pk=room_id) | Q(chat_rooms__pk=room_id))
    return frozenset(rows.values_list("pk", flat=True))


def allowed_users_by_room(rooms: list[Room]) -> dict[int, frozenset[int]]:
    """``allowed_user_ids`` of several private rooms in two queries (the lobby's)."""
    from django.contrib.auth import get_user_model

    if not rooms:
        return {}
    staff = set(get_user_model().objects.filter(is_staff=True).values_list("pk", flat=True))
    allowed: dict[int, set[int]] = {
        room.pk: staff | ({room.owner_id} if room.owner_id else set()) for room in rooms}
    through = Room.members.through.objects.filter(room_id__in=list(allowed))
    for room_id, user_id in through.values_list("room_id", "user_id"):
        allowed[room_id].add(user_id)
    return {room_id: frozenset(users) for room_id, users in allowed.items()}


def guests_may_post(room: Room) -> bool:
    """Guests (no account) may post unless the site (CHAT_GUESTS) or the room forbids it."""
    return conf.guests_allowed() and room.guests_allowed


def can_moderate(room: Room, user: Any) -> bool:
    """Staff and the room's owner may delete messages from the room page."""
    uid = _user_id(user)
    return uid is not None and bool(user.is_staff or room.owner_id == uid)


def can_manage_members(room: Room, user: Any) -> bool:
    """The owner (and staff) add and remove members of a private room."""
    return can_moderate(room, user)

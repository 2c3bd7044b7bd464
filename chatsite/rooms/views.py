"""The HTML pages: the room list (with the create form) and a room."""

from django.contrib.messages import get_messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from chatsite.rooms import (
    access,
    conf,
    limits,
    moderation,
    names,
    page_settings,
    presence,
    queries,
    services,
)
from chatsite.rooms.forms import RoomForm
from chatsite.rooms.identity import current_nick, current_user, remember_nick
from chatsite.rooms.models import Room


@require_http_methods(["GET", "HEAD", "POST"])
def lobby(request: HttpRequest) -> HttpResponse:
    """List the rooms (live counts come from the lobby long-poll) and create one."""
    form = RoomForm(request.POST if request.method == "POST" else None,
                    owner=current_user(request))
    limited = None
    if request.method == "POST":
        limited = limits.check_room_creation(request)
        if limited is not None:
            form.add_error(None, limited.message)
        elif form.is_valid():
            room = form.save()
            services.announce_room(room)
            return HttpResponseRedirect(room.get_absolute_url())
    context = {
        "rooms": queries.lobby_rooms(request.user.pk),
        "cursor": queries.latest_message_id(),
        "form": form,
        "page_attrs": page_settings.live_attrs(),
    }
    response = render(request, "rooms/lobby.html", context,
                      status=429 if limited else 400 if form.errors else 200)
    if limited is not None:
        response["Retry-After"] = str(limited.retry_after)
    return response


def _room_page(request: HttpRequest, room: Room, *, nick_error: str = "",
               status: int = 200) -> HttpResponse:
    latest = list(room.messages.order_by("-id")[:conf.PAGE_SIZE + 1])
    has_older = len(latest) > conf.PAGE_SIZE
    messages = latest[:conf.PAGE_SIZE][::-1]
    nick = current_nick(request)
    if nick is not None:
        services.join(room, nick)  # others see the newcomer before its first poll
    user = current_user(request)
    rooms = queries.lobby_rooms(request.user.pk)  # the sidebar
    context = {
        "room": room,
        "rooms": rooms,
        "rooms_cursor": queries.latest_message_id(),
        "room_count": next((r["count"] for r in rooms if r["slug"] == room.slug), 0),
        "messages": messages,
        "has_older": has_older,
        "cursor": messages[-1].id if messages else 0,
        "changes_cursor": moderation.latest_change_id(room.id),
        "nick": nick,
        "is_guest": user is None,
        "guests_may_post": access.guests_may_post(room),
        "can_moderate": access.can_moderate(room, user),
        "can_manage": room.private and access.can_manage_members(room, user),
        "members": room.members.order_by("username") if room.private else [],
        "present": presence.present_nicks(room.id),
        "next_path": room.get_absolute_url(),  # for login links, also under .../nick
        "messages_flash": get_messages(request),  # "messages" is the chat's here
        "nick_error": nick_error,
        "page_attrs": page_settings.room_attrs(),
        "max_text": conf.MAX_TEXT,
        "max_nick": conf.MAX_NICK,
    }
    return render(request, "rooms/room.html", context, status=status)


@require_http_methods(["GET", "HEAD"])
def room(request: HttpRequest, slug: str) -> HttpResponse:
    """A room: the last messages, the people present, the message box."""
    return _room_page(request, access.room_or_404(request, slug))


@require_POST
def choose_nick(request: HttpRequest, slug: str) -> HttpResponse:
    """A guest's display name: reserved to the session (names.py), kept in it."""
    room_obj = access.room_or_404(request, slug)
    if current_user(request) is not None:
        return HttpResponseRedirect(room_obj.get_absolute_url())  # users are their username
    if not access.guests_may_post(room_obj):
        return _room_page(request, room_obj, nick_error="Log in to chat in this room.",
                          status=403)
    limited = limits.check_name_change(request)
    if limited is not None:
        response = _room_page(request, room_obj, nick_error=limited.message, status=429)
        response["Retry-After"] = str(limited.retry_after)
        return response
    try:
        nick = names.claim(request, request.POST.get("nick"))
    except names.NameTaken as exc:
        return _room_page(request, room_obj, nick_error=str(exc), status=409)
    except ValueError as exc:
        return _room_page(request, room_obj, nick_error=str(exc), status=400)
    old = current_nick(request)
    remember_nick(request, nick)
    if old is not None and old != nick:
        services.leave(room_obj, old)
    return HttpResponseRedirect(room_obj.get_absolute_url())

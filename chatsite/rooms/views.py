"""The HTML pages: the room list (with the create form) and a room."""

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_http_methods, require_POST

from chatsite.rooms import conf, presence, services, streams, updates
from chatsite.rooms.forms import RoomForm
from chatsite.rooms.identity import current_nick, remember_nick
from chatsite.rooms.models import Room
from chatsite.rooms.validation import clean_nick


@require_http_methods(["GET", "HEAD", "POST"])
def lobby(request: HttpRequest) -> HttpResponse:
    """List the rooms (live counts come from the lobby long-poll) and create one."""
    form = RoomForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        room = form.save()
        services.announce_room(room)
        return HttpResponseRedirect(room.get_absolute_url())
    context = {
        "rooms": updates.lobby_rooms(),
        "cursor": updates.latest_message_id(),
        "form": form,
        "poll_timeout": conf.poll_timeout(),
        "first_event_ms": round(streams.first_event_seconds() * 1000),
    }
    return render(request, "rooms/lobby.html", context, status=400 if form.errors else 200)


def _room_page(request: HttpRequest, room: Room, *, nick_error: str = "",
               status: int = 200) -> HttpResponse:
    latest = list(room.messages.order_by("-id")[:conf.PAGE_SIZE + 1])
    has_older = len(latest) > conf.PAGE_SIZE
    messages = latest[:conf.PAGE_SIZE][::-1]
    nick = current_nick(request)
    if nick is not None:
        services.join(room, nick)  # others see the newcomer before its first poll
    context = {
        "room": room,
        "messages": messages,
        "has_older": has_older,
        "cursor": messages[-1].id if messages else 0,
        "nick": nick,
        "present": presence.present_nicks(room.id),
        "nick_error": nick_error,
        "poll_timeout": conf.poll_timeout(),
        "first_event_ms": round(streams.first_event_seconds() * 1000),
    }
    return render(request, "rooms/room.html", context, status=status)


@require_http_methods(["GET", "HEAD"])
def room(request: HttpRequest, slug: str) -> HttpResponse:
    """A room: the last messages, the people present, the message box."""
    return _room_page(request, get_object_or_404(Room, slug=slug))


@require_POST
def choose_nick(request: HttpRequest, slug: str) -> HttpResponse:
    """The first-time visitor's display name, kept in the session."""
    room_obj = get_object_or_404(Room, slug=slug)
    try:
        nick = clean_nick(request.POST.get("nick"))
    except ValueError as exc:
        return _room_page(request, room_obj, nick_error=str(exc), status=400)
    remember_nick(request, nick)
    return HttpResponseRedirect(room_obj.get_absolute_url())

"""Room-page actions of moderators and owners: delete a message, manage members."""

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.http import require_POST

from chatsite.rooms import access, members, moderation
from chatsite.rooms.identity import current_user
from chatsite.rooms.models import Message


@require_POST
def delete_message(request: HttpRequest, slug: str, message_id: int) -> JsonResponse:
    """Soft-delete a message (staff and the room's owner): 200 ``{"deleted": id}``;
    every open page of the room removes it at once."""
    room = access.room_or_404(request, slug)
    if not access.can_moderate(room, current_user(request)):
        return JsonResponse({"error": "Only moderators can delete messages."}, status=403)
    message = Message.objects.filter(room=room, pk=message_id).first()
    if message is None:
        return JsonResponse({"error": "No such message."}, status=404)
    moderation.delete_message(message, by=request.user)
    return JsonResponse({"deleted": message.pk})


@require_POST
def add_member(request: HttpRequest, slug: str) -> HttpResponse:
    """The owner lets an account into a private room (form on the room page)."""
    room = access.room_or_404(request, slug)
    if not room.private or not access.can_manage_members(room, current_user(request)):
        return JsonResponse({"error": "Only the owner manages members."}, status=403)
    try:
        members.add_member(room, request.POST.get("username", ""))
    except members.NoSuchUser as exc:
        flash.error(request, str(exc))
    return HttpResponseRedirect(room.get_absolute_url())


@require_POST
def remove_member(request: HttpRequest, slug: str, user_id: int) -> HttpResponse:
    """The owner takes a member out; the member's open pages say so at once."""
    room = access.room_or_404(request, slug)
    if not room.private or not access.can_manage_members(room, current_user(request)):
        return JsonResponse({"error": "Only the owner manages members."}, status=403)
    members.remove_member(room, user_id)
    return HttpResponseRedirect(room.get_absolute_url())

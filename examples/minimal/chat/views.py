"""The whole chat: a page, a post, a long-poll and an event stream on one channel.

The database is the truth: a client resumes from the last message id it has (the
long-poll's ?after=, the stream's Last-Event-ID) and anything it missed is read back;
publish() only says "there is news past id N".
"""
import json

from comet_server import (
    Event,
    ServerSentEvent,
    event_stream,
    last_event_id,
    publish,
    wait_for_events,
)
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from chat.models import Message

CHANNEL = "room"
POLL_SECONDS = 25  # how long a long-poll waits for news
RETRY_SECONDS = 3  # how soon a browser reopens an event stream that ended
BATCH = 100  # messages per answer; a client further behind reloads


def index(request):
    latest = list(Message.objects.order_by("-id")[:50])[::-1]
    return render(request, "chat/index.html", {
        "messages": latest,
        "client": {"after": latest[-1].id if latest else 0, "pollSeconds": POLL_SECONDS,
                   "firstEventMs": 5000, "graceMs": (RETRY_SECONDS + 3) * 1000},
    })


# No cookie says who anyone is here, so there is nothing for CSRF to protect (and
# curl can post).  A site with logins keeps CSRF on, as chatsite/ does.
@csrf_exempt
@require_POST
def post(request):
    author = request.POST.get("author", "").strip()[:40] or "anonymous"
    text = request.POST.get("text", "").strip()
    if not text or len(text) > 500:
        return JsonResponse({"error": "text: 1 to 500 characters"}, status=400)
    with transaction.atomic():
        message = Message.objects.create(author=author, text=text)
        payload = {"type": "message", "message": message.as_json()}
        # After the commit, so a woken client finds the message in the database.
        transaction.on_commit(lambda: publish(CHANNEL, payload, cursor=message.id))
    return JsonResponse(message.as_json(), status=201)


def _cursor(text):
    """A client's resume point: a message id >= 0, else ValueError."""
    value = int(text or 0)
    if value < 0:
        raise ValueError("negative")
    return value


def _item(message_json):
    return {"event": "message", "data": message_json, "id": message_json["id"]}


def render_updates(events, after):
    """A long-poll's answer (module-level: one render serves every waiter woken together)."""
    items = [_item(e.payload["message"]) for e in events if e.cursor is not None]
    cursor = max([after] + [item["id"] for item in items])
    return JsonResponse({"events": items, "cursor": cursor})


@require_GET
def updates(request):
    try:
        after = _cursor(request.GET.get("after"))
    except ValueError:
        return JsonResponse({"error": "after: a message id"}, status=400)
    missed = [m.as_json() for m in Message.objects.filter(id__gt=after).order_by("id")[:BATCH]]
    if missed:
        return JsonResponse({"events": [_item(m) for m in missed], "cursor": missed[-1]["id"]})
    return wait_for_events([CHANNEL], after=after, render=render_updates, timeout=POLL_SECONDS)


def as_sse(event):
    """A stream's frame of an event (made once, written to every stream); its id is the
    event's cursor, where the browser resumes."""
    return ServerSentEvent(json.dumps(event.payload["message"]), event="message")


@require_GET
def events(request):
    try:
        after = _cursor(last_event_id(request))
    except ValueError:
        return JsonResponse({"error": "after: a message id"}, status=400)
    missed = list(Message.objects.filter(id__gt=after).order_by("id")[:BATCH + 1])
    replay = [Event(CHANNEL, {"type": "message", "message": m.as_json()}, m.id)
              for m in missed[:BATCH]]
    # "ready" goes out at once: the page knows the stream works (nothing buffers it).
    return event_stream([CHANNEL], after=after, render=as_sse, replay=replay,
                        resync=len(missed) > BATCH, retry=RETRY_SECONDS,
                        first=[ServerSentEvent("{}", event="ready")])

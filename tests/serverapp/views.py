"""Views that exercise every path of the comet server."""

import json
import time

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from comet_server import (
    Event,
    ServerSentEvent,
    event_stream,
    last_event_id,
    publish,
    stream_events,
    wait_for_events,
    websocket,
)
from comet_server.push.waits import Sleep
from comet_server.responses import DeferredResponse
from comet_server.sockets import Socket


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"hello", content_type="text/plain")


@csrf_exempt
def echo(request: HttpRequest, rest: str = "") -> JsonResponse:
    meta = {k: v for k, v in request.META.items() if isinstance(v, str)}
    return JsonResponse({"method": request.method, "path": request.path,
                         "body_len": len(request.body), "meta": meta,
                         "get": request.GET.dict()})


def render_events(events, after):
    return JsonResponse({"events": [{"cursor": e.cursor, "payload": e.payload} for e in events],
                         "after": after})


def wait(request: HttpRequest, channel: str) -> HttpResponse:
    after = request.GET.get("after")
    timeout = float(request.GET.get("timeout", "20"))
    return wait_for_events([channel], after=int(after) if after else None,
                           render=render_events, timeout=timeout)


@csrf_exempt
def pub(request: HttpRequest, channel: str) -> JsonResponse:
    cursor = request.GET.get("cursor")
    event = publish(channel, json.loads(request.body or b"null"),
                    cursor=int(cursor) if cursor else None)
    return JsonResponse({"cursor": event.cursor})


def render_chunk(events, cursor):
    return "".join(f"{e.cursor}:{json.dumps(e.payload)}\n" for e in events)


def stream(request: HttpRequest, channel: str) -> HttpResponse:
    return stream_events([channel], after=None, render=render_chunk, first=b"open\n",
                         duration=float(request.GET.get("duration", "30")), heartbeat=10)


def render_sse(event: Event) -> ServerSentEvent | str | None:
    """``{"name", "data"}`` payloads become named events; ``{"skip": true}`` nothing;
    anything else a ``message`` with the payload as JSON."""
    payload = event.payload
    if isinstance(payload, dict) and payload.get("skip"):
        return None
    if isinstance(payload, dict) and "data" in payload:
        return ServerSentEvent(str(payload["data"]), event=payload.get("name"))
    if isinstance(payload, dict) and payload.get("fail"):
        raise RuntimeError("this event cannot be rendered")
    return json.dumps(payload)


def sse(request: HttpRequest, channel: str) -> HttpResponse:
    """An event stream; ``?replay=N`` pretends the store holds N events past the
    cursor, ``?resync=1`` that the gap is too large to replay."""
    cursor = last_event_id(request)
    after = int(cursor) if cursor else None
    replay = []
    if after is not None:
        replay = [Event(channel, {"name": "replayed", "data": f"replayed {after + i}"},
                        after + i) for i in range(1, int(request.GET.get("replay", "0")) + 1)]
    resync = bool(request.GET.get("resync"))
    options = {name: float(request.GET[name]) for name in ("lifetime", "heartbeat", "retry")
               if name in request.GET}
    return event_stream([channel], after=after, render=render_sse, replay=replay,
                        resync=resync, **options)


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom in the view")


def exits(request: HttpRequest) -> HttpResponse:
    raise SystemExit("a view must not stop the server")


def boom_midstream(request: HttpRequest) -> HttpResponse:
    def coroutine(req):
        yield b"first part"
        yield Sleep(0.2)
        raise RuntimeError("boom after the headers")

    return DeferredResponse(coroutine, content_type="text/plain")


def plain_stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse((b"part%d;" % i for i in range(3)), content_type="text/plain")


def sleepy(request: HttpRequest) -> HttpResponse:
    seconds = float(request.GET.get("s", "30"))

    def coroutine(req):
        yield Sleep(seconds)
        yield b"slept"

    return DeferredResponse(coroutine, content_type="text/plain")


def block(request: HttpRequest) -> HttpResponse:
    """Block the worker's event loop for ``s`` seconds (a hung view, for supervision)."""
    time.sleep(float(request.GET.get("s", "1000")))
    return HttpResponse(b"unblocked", content_type="text/plain")


def render_ws(event: Event) -> dict | None:
    """A socket's message for an event: its cursor and payload (``{"skip": true}``:
    none)."""
    if isinstance(event.payload, dict) and event.payload.get("skip"):
        return None
    return {"cursor": event.cursor, "payload": event.payload}


def on_ws_message(socket: Socket, message: str | bytes) -> None:
    """``boom`` raises; ``pub:<channel>:<text>`` publishes; ``close:<code>`` closes;
    anything else comes back as ``echo:<message>`` (binary as it is)."""
    if isinstance(message, bytes):
        socket.send(message)
    elif message == "boom":
        raise RuntimeError("boom in on_message")
    elif message.startswith("pub:"):
        _, channel, text = message.split(":", 2)
        publish(channel, {"text": text})
    elif message.startswith("close:"):
        socket.close(int(message[6:]), "asked to")
    else:
        socket.send(f"echo:{message}")


def ws(request: HttpRequest, channel: str) -> HttpResponse:
    """A WebSocket following ``channel`` from ``?after=``; ``?replay=N`` pretends the
    store holds N events past it (as ``sse``)."""
    after_text = request.GET.get("after")
    after = int(after_text) if after_text else None
    replay = []
    if after is not None:
        replay = [Event(channel, {"replayed": after + i}, after + i)
                  for i in range(1, int(request.GET.get("replay", "0")) + 1)]
    return websocket(request, channels=[channel], after=after, render=render_ws,
                     replay=replay, first=[{"ready": True}], on_message=on_ws_message)


def spin(request: HttpRequest) -> HttpResponse:
    """Hold the GIL in pure Python for ``s`` seconds (a CPU-bound view)."""
    end = time.perf_counter() + float(request.GET.get("s", "1"))
    count = 0
    while time.perf_counter() < end:
        count += 1
    return HttpResponse(str(count).encode(), content_type="text/plain")


def db_backend(request: HttpRequest) -> JsonResponse:
    """The database backend this request's thread uses (after ``s`` seconds in it)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_sleep(%s)", [float(request.GET.get("s", "0"))])
        pid = cursor.fetchone()[0]
    return JsonResponse({"pid": pid})

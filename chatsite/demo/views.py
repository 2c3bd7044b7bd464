"""The seed post's demo: five chunks one second apart, written with ``defer_in_time``;
and ``/demo/echo``, the smallest WebSocket: every message comes back as it was sent
(what the Autobahn conformance cases drive)."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from comet_server import defer_in_time, websocket
from comet_server.sockets import Socket

STAGES = 3  # /demo/stage1/ to /demo/stage3/, then /demo/last_stage4/ ends the stream


def demo(request: HttpRequest) -> HttpResponse:
    return defer_in_time(HttpResponse("First content<br /> "), 1, "/demo/stage1/")


def stage(request: HttpRequest, number: int, response_prev: HttpResponse) -> HttpResponse:
    """Stage ``number``: its chunk, then the next stage a second later."""
    if not 1 <= number <= STAGES:
        raise Http404("no such stage")
    following = f"/demo/stage{number + 1}/" if number < STAGES else "/demo/last_stage4/"
    return defer_in_time(HttpResponse(f"stage{number}<br /> "), 1, following)


def last_stage4(request: HttpRequest, response_prev: HttpResponse) -> HttpResponse:
    return HttpResponse("last_stage4<br /> ")


def page(request: HttpRequest) -> HttpResponse:
    """The demo inside the site's layout: the page reads ``/demo/`` as it streams."""
    return render(request, "demo/page.html")


def _echo(socket: Socket, message: str | bytes) -> None:
    socket.send(message)


def echo(request: HttpRequest) -> HttpResponse:
    """A WebSocket that sends every message back, text as text, binary as binary."""
    return websocket(request, on_message=_echo)

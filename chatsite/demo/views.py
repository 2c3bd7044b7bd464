"""The seed post's demo: five chunks one second apart, written with ``defer_in_time``;
and ``/demo/echo``, the smallest WebSocket: every message comes back as it was sent
(what the Autobahn conformance cases drive)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from comet_server import defer_in_time, websocket
from comet_server.sockets import Socket


def demo(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("First content<br /> ")
    return defer_in_time(response, 1, "/demo/stage1/")


def stage1(request: HttpRequest, response_prev: HttpResponse) -> HttpResponse:
    response = HttpResponse("stage1<br /> ")
    return defer_in_time(response, 1, "/demo/stage2/")


def stage2(request: HttpRequest, response_prev: HttpResponse) -> HttpResponse:
    response = HttpResponse("stage2<br /> ")
    return defer_in_time(response, 1, "/demo/stage3/")


def stage3(request: HttpRequest, response_prev: HttpResponse) -> HttpResponse:
    response = HttpResponse("stage3<br /> ")
    return defer_in_time(response, 1, "/demo/last_stage4/")


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

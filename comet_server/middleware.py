"""Hands the request to deferred responses, which call further views with it later."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from comet_server.responses import DeferredResponse


class CometMiddleware:
    """Put it in MIDDLEWARE (anywhere) so ``defer_in_time`` chains know their request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if isinstance(response, DeferredResponse):
            response.comet_request = request
        return response

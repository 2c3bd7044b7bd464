"""Django middleware: deferred responses learn their request; unparseable bodies get 400."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseBase
from django.http.multipartparser import MultiPartParserError

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


class BadInputMiddleware:
    """Put it first in MIDDLEWARE: a request body Django cannot parse (a form that is
    not UTF-8, a broken multipart body, too many fields) gets ``400`` with the reason.

    Without it Django raises ``BadRequest`` where the body is first read (often the
    CSRF check), and again inside its own 400 handler (which runs the CSRF check
    too), so the client gets a 500.  Parsing here, before any other middleware,
    answers it once and plainly; a body that parses is cached for the view.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            try:
                request.POST  # noqa: B018  (parses and caches the body)
            except (BadRequest, SuspiciousOperation, MultiPartParserError, LookupError,
                    UnicodeError, ValueError) as exc:
                return HttpResponseBadRequest(f"Bad request body: {exc}\n",
                                              content_type="text/plain; charset=utf-8")
        return self.get_response(request)

"""A live status page for staff: the comet server's numbers per worker and in total,
with charts the browser draws from the JSON feed: the workers' snapshots as /metrics
exposes them and their sum, as they are (the page's columns and charts read their
fields by name; a test checks those names against the snapshot's type).

Staff only: a visitor who is not logged in is sent to ``settings.LOGIN_URL``; a
logged-in user who is not staff gets 403 (sending them to the login again would loop:
the login sends a logged-in user straight back).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

import comet_server

View = Callable[[HttpRequest], HttpResponse]


def staff_only(view: View) -> View:
    @wraps(view)
    def guarded(request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_active and user.is_staff:
            return view(request)
        if user.is_authenticated:
            raise PermissionDenied("the server status is for staff")
        return redirect_to_login(request.get_full_path())

    return guarded

# How often the page asks for the feed, and how much history its charts keep.
FEED_PERIOD_SECONDS = 2.0
CHART_SECONDS = 600


@never_cache
@staff_only
def page(request: HttpRequest) -> HttpResponse:
    return render(request, "status/status.html", {
        "period_ms": round(FEED_PERIOD_SECONDS * 1000),
        "chart_seconds": CHART_SECONDS,
        "chart_minutes": CHART_SECONDS // 60,
    })


@never_cache
@staff_only
def feed(request: HttpRequest) -> JsonResponse:
    metrics = comet_server.worker_metrics()
    if metrics is None:
        return JsonResponse({"running": False, "time": time.time()})
    return JsonResponse({
        "running": True,
        "time": time.time(),
        "answered_by": metrics["answered_by"],
        "workers": metrics["workers"],  # each a WorkerSnapshot (comet_server.serving.snapshot)
        "total": metrics["total"],
    })

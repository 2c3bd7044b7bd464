"""A live status page for staff: the comet server's numbers per worker and in total,
with charts the browser draws from the JSON feed (the same snapshots /metrics
exposes, so both show the same totals).

Staff only: anyone else is sent to ``settings.LOGIN_URL`` (the admin's login unless
the site sets another).
"""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth.decorators import user_passes_test
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

import comet_server

staff_only = user_passes_test(lambda user: user.is_active and user.is_staff)

# What the feed sends of each snapshot (the page needs no more).
FIELDS = ("worker", "connections", "accepted_total", "requests_total", "parked", "streaming",
          "event_streams", "waiters", "published_total", "delivered_total", "responses",
          "not_delivered", "bytes_written", "accepting", "stopping", "cap_hits", "rss_bytes",
          "open_fds", "uptime_s", "loop_lag_last_s", "loop_lag_seconds", "fanout_seconds",
          "broker")


def _slim(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {key: snapshot[key] for key in FIELDS if key in snapshot}


@never_cache
@staff_only
def page(request: HttpRequest) -> HttpResponse:
    return render(request, "status/status.html")


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
        "workers": [_slim(w) for w in metrics["workers"]],
        "total": _slim(metrics["total"]) | {"workers": metrics["total"]["workers"]},
    })

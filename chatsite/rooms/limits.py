"""Rate limits: fixed windows counted in Django's cache.

With ``COMET_BROKER`` set the cache is Redis (settings.py), so every process counts
into the same windows; otherwise it is this process's memory.  Each limit is a setting
``"COUNT/SECONDS"`` (``conf.RATES``) with a default a person never meets and a script
always does.  While the cache is unreachable the limits fail open (logged once a
minute): a Redis outage must not stop the chat.  A refused action gets ``429`` with
``Retry-After`` (whole seconds until its window ends) and ``{"error", "retry_after"}``.
"""

import logging
import math
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.http import HttpRequest, JsonResponse

from chatsite.rooms.conf import rate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limited:
    """A refusal: what was limited and the seconds until it is allowed again."""

    message: str
    retry_after: int

    def response(self) -> JsonResponse:
        response = JsonResponse({"error": self.message, "retry_after": self.retry_after},
                                status=429)
        response["Retry-After"] = str(self.retry_after)
        return response


def hit(scope: str, who: str, what: str = "requests") -> Limited | None:
    """Count one action of ``who`` under the limit ``scope``; a ``Limited`` when the
    action is over it (the action must then not happen), else ``None``."""
    count, seconds = rate(scope)
    now = time.time()
    window = int(now // seconds)
    key = f"rate:{scope}:{who}:{window}"
    ttl = math.ceil(seconds) + 1
    try:
        used = _count(key, ttl)
    except Exception as exc:  # the cache (Redis) is down: let people chat meanwhile
        _warn_unavailable(exc)
        return None
    if used <= count:
        return None
    retry = max(1, math.ceil((window + 1) * seconds - now))
    return Limited(f"Too many {what}: try again in {retry} s.", retry)


def _count(key: str, ttl: int) -> int:
    cache.add(key, 0, ttl)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, ttl)
        return 1


_warned_at = 0.0


def _warn_unavailable(exc: Exception) -> None:
    """Fail open, loudly: a line at most every minute while the cache is unreachable."""
    global _warned_at
    if time.monotonic() - _warned_at >= 60:
        _warned_at = time.monotonic()
        log.warning("rate limits not enforced: the cache is unavailable (%s)", exc)


def client_address(request: HttpRequest) -> str:
    """The client's address (the comet server puts a trusted proxy's client there)."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def visitor(request: HttpRequest) -> str:
    """Who is acting: the user, else the session (created if needed)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"u{user.pk}"
    if request.session.session_key is None:
        request.session.save()
    return f"s{request.session.session_key}"


def check_post(request: HttpRequest) -> Limited | None:
    """Posting: per visitor (session or user) and per address."""
    return (hit("post-session", visitor(request), "messages")
            or hit("post-address", client_address(request), "messages from your address"))


def check_room_creation(request: HttpRequest) -> Limited | None:
    return hit("room-address", client_address(request), "new rooms")


def check_name_change(request: HttpRequest) -> Limited | None:
    return hit("name-session", visitor(request), "name changes")


def check_typing(request: HttpRequest) -> Limited | None:
    """Typing: per visitor, and per address (a script with many sessions)."""
    return (hit("typing-session", visitor(request), "typing signals")
            or hit("typing-address", client_address(request), "typing signals from your "
                   "address"))

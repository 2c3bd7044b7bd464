"""Build a PEP 3333 environ from the parts of a parsed HTTP request.

Pure functions, no I/O and no libevent: the server hands in bytes it read off the
request, and gets back the dict a WSGI application expects.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable
from urllib.parse import unquote_to_bytes

from comet_server.protocol.http1 import authority

# Headers that are not turned into HTTP_* keys.
_SPECIAL = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_PROTOCOLS = {(1, 1): "HTTP/1.1", (1, 0): "HTTP/1.0"}
_KEYS: dict[bytes, str | None] = {}  # header name as sent -> environ key (None: dropped)


def environ_key(raw_name: bytes) -> str | None:
    """The environ key of a header name; ``None`` for names with ``_``, which would
    collide with their ``-`` spelling (X_Forwarded_For vs X-Forwarded-For)."""
    key = _KEYS.get(raw_name)
    if key is None and raw_name not in _KEYS:
        lower = raw_name.lower()
        if b"_" in lower:
            key = None
        else:
            key = _SPECIAL.get(lower) or "HTTP_" + lower.decode("latin-1").upper().replace("-", "_")
        if len(_KEYS) < 2048:  # the names clients send are few; do not grow without end
            _KEYS[raw_name] = key
    return key


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """(path, query) of a request target; absolute-form targets lose scheme and host."""
    if target[:1] == b"/" and b"?" not in target and b"#" not in target:
        return target, b""
    if target.startswith((b"http://", b"https://")):
        rest = target.split(b"://", 1)[1]
        slash = rest.find(b"/")
        target = rest[slash:] if slash >= 0 else b"/"
    path, _, query = target.partition(b"?")
    path = path.partition(b"#")[0]
    return path or b"/", query.partition(b"#")[0]


def base_environ(*, server: tuple[str, int], multiprocess: bool,
                 url_scheme: str = "http") -> dict:
    """The keys that are the same for every request of one server (copied per request)."""
    return {
        "SCRIPT_NAME": "",
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
    }


def build_environ(
    base: dict,
    *,
    method: str,
    target: bytes,
    version: tuple[int, int],
    headers: Iterable[tuple[bytes, bytes]],
    read_body: Callable[[], bytes],
    remote: tuple[str, str],
) -> dict:
    """The WSGI environ for one request (native strings are latin-1 decoded).

    ``read_body`` is called only when the request says it has a body.
    """
    path, query = split_target(target)
    environ = base.copy()
    environ["REQUEST_METHOD"] = method
    environ["PATH_INFO"] = (unquote_to_bytes(path) if b"%" in path else path).decode("latin-1")
    environ["QUERY_STRING"] = query.decode("latin-1")
    environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(version) or f"HTTP/{version[0]}.{version[1]}"
    environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = remote
    for raw_name, raw_value in headers:
        key = environ_key(raw_name)
        if key is None:
            continue
        value = raw_value.decode("latin-1")
        if key in environ:
            separator = "; " if key == "HTTP_COOKIE" else ", "
            environ[key] = environ[key] + separator + value
        else:
            environ[key] = value
    if target[:1] != b"/" and target.startswith((b"http://", b"https://")):
        # RFC 9112 §3.2.2: an absolute-form target's authority wins over Host.
        environ["HTTP_HOST"] = authority(target).decode("latin-1")
    body = b""
    if "CONTENT_LENGTH" in environ or environ.pop("HTTP_TRANSFER_ENCODING", None):
        body = read_body()
        # llhttp has already de-chunked the body: tell the application its length.
        environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input"] = io.BytesIO(body)
    return environ

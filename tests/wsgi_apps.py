"""Plain WSGI applications (no Django) served by the comet server in tests and benches."""

from wsgiref.validate import validator


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]


def _echo(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    text = "\n".join(f"{k}={v!r}" for k, v in sorted(environ.items())
                     if isinstance(v, str)).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [text, b"\nBODY=", body]


validated_echo = validator(_echo)

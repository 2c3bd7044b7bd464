"""The WSGI environ the comet server builds, seen through /echo and a validated app."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.http import build_request, connect, exchange, read_response
from tests.helpers.proc import ServerProcess, launch, wsgi_app_argv


def echo_meta(server: ServerProcess, raw: bytes) -> tuple[dict[str, Any], int]:
    """Send ``raw`` to the Django /echo view; (its JSON answer, our client port)."""
    with connect(server.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(raw)
        response = read_response(reader)
        client_port = sock.getsockname()[1]
    assert response.status == 200, response.body[:500]
    return response.json(), client_port


def test_path_is_percent_decoded_and_query_kept_raw(comet: ServerProcess) -> None:
    """PATH_INFO is decoded (routing sees /echo), QUERY_STRING is left as sent."""
    answer, _ = echo_meta(comet, build_request("GET", "/ech%6F?x=%20y&z=a+b&x=2"))
    meta = answer["meta"]
    assert meta["PATH_INFO"] == "/echo"
    assert meta["QUERY_STRING"] == "x=%20y&z=a+b&x=2"
    assert meta["SCRIPT_NAME"] == ""
    assert answer["get"] == {"x": "2", "z": "a b"}


def test_body_headers_and_repeated_headers(comet: ServerProcess) -> None:
    """Content-Type/Length become CONTENT_*, repeated headers are joined with ', '."""
    raw = build_request("POST", "/echo", body=b'{"a": 1}', headers=[
        ("Content-Type", "application/json"), ("X-Multi", "one"), ("X-Multi", "two"),
        ("X-Under_Score", "dropped"), ("X-Plain", "kept")])
    answer, _ = echo_meta(comet, raw)
    meta = answer["meta"]
    assert answer["method"] == "POST" and answer["body_len"] == 8
    assert meta["CONTENT_TYPE"] == "application/json"
    assert meta["CONTENT_LENGTH"] == "8"
    assert "HTTP_CONTENT_TYPE" not in meta and "HTTP_CONTENT_LENGTH" not in meta
    assert meta["HTTP_X_MULTI"] == "one, two"
    assert meta["HTTP_X_PLAIN"] == "kept"
    assert "HTTP_X_UNDER_SCORE" not in meta  # underscores could spoof dashed headers


def test_remote_and_server_addresses(comet: ServerProcess) -> None:
    """REMOTE_ADDR/PORT name our socket; SERVER_* and the protocol are right."""
    answer, client_port = echo_meta(comet, build_request("GET", "/echo"))
    meta = answer["meta"]
    assert meta["REMOTE_ADDR"] == "127.0.0.1"
    assert meta["REMOTE_PORT"] == str(client_port)
    assert meta["SERVER_NAME"] == "127.0.0.1" and meta["SERVER_PORT"] == str(comet.port)
    assert meta["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert meta["wsgi.url_scheme"] == "http"


def test_http10_protocol(comet: ServerProcess) -> None:
    """SERVER_PROTOCOL follows the request's version."""
    answer, _ = echo_meta(comet, b"GET /echo HTTP/1.0\r\n\r\n")
    assert answer["meta"]["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_chunked_request_body_gets_its_real_length(comet: ServerProcess) -> None:
    """A chunked upload is de-chunked: CONTENT_LENGTH is the body's length, no TE."""
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n")
    answer, _ = echo_meta(comet, raw)
    assert answer["body_len"] == 8
    assert answer["meta"]["CONTENT_LENGTH"] == "8"
    assert "HTTP_TRANSFER_ENCODING" not in answer["meta"]


# -- a plain WSGI app wrapped in wsgiref.validate ---------------------------------------


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``python -m comet_server`` serving tests.wsgi_apps:validated_echo."""
    server = launch(wsgi_app_argv("tests.wsgi_apps:validated_echo"),
                    tmp_path_factory.mktemp("validated"), "validated")
    yield server
    server.terminate()


def validated_echo(server: ServerProcess, raw: bytes) -> tuple[dict[str, str], bytes]:
    """Send ``raw`` to validated_echo; (its str environ entries, the body it read)."""
    response = exchange(server.port, raw)[0]
    assert response.status == 200, response.body
    text, _, body = response.body.partition(b"\nBODY=")
    environ = {}
    for line in text.decode("utf-8").splitlines():  # the app encodes its text as UTF-8
        key, _, value = line.partition("=")
        environ[key] = ast.literal_eval(value)
    return environ, body


def assert_validator_clean(server: ServerProcess) -> None:
    """wsgiref.validate raises AssertionError into the server on any PEP 3333 breach."""
    log = server.stderr()
    assert "AssertionError" not in log and "Traceback" not in log, log[-3000:]


def test_validated_get_is_pep3333_clean(validated: ServerProcess) -> None:
    """A GET with an encoded path and a query passes the validator."""
    environ, body = validated_echo(
        validated, build_request("GET", "/a%20b/%C3%A9?q=%20x&r", headers=[("X-A", "1"),
                                                                           ("X-A", "2")]))
    assert body == b""
    assert environ["PATH_INFO"] == "/a b/\u00c3\u00a9"  # UTF-8 bytes as latin-1 (PEP 3333)
    assert environ["QUERY_STRING"] == "q=%20x&r"
    assert environ["HTTP_X_A"] == "1, 2"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REQUEST_METHOD"] == "GET"
    assert_validator_clean(validated)


def test_validated_post_and_chunked_post_are_clean(validated: ServerProcess) -> None:
    """Bodies, with a length or chunked, reach the app through a clean wsgi.input."""
    environ, body = validated_echo(validated, build_request(
        "POST", "/upload", body=b"payload!", headers={"Content-Type": "text/plain"}))
    assert body == b"payload!"
    assert environ["CONTENT_LENGTH"] == "8" and environ["CONTENT_TYPE"] == "text/plain"
    raw = (b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n")
    environ, body = validated_echo(validated, raw)
    assert body == b"abcdef" and environ["CONTENT_LENGTH"] == "6"
    assert "HTTP_TRANSFER_ENCODING" not in environ
    environ, _ = validated_echo(validated, b"GET / HTTP/1.0\r\n\r\n")
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert_validator_clean(validated)


def test_an_absolute_form_target_names_the_host(comet: ServerProcess) -> None:
    """RFC 9112 §3.2.2: the target's authority wins over Host (ALLOWED_HOSTS then
    judges the host the request really asked for)."""
    raw = (b"GET http://chat.example.org:8080/echo?x=1 HTTP/1.1\r\nHost: other.example\r\n"
           b"Connection: close\r\n\r\n")
    answer, _ = echo_meta(comet, raw)
    assert answer["meta"]["HTTP_HOST"] == "chat.example.org:8080"
    assert answer["meta"]["PATH_INFO"] == "/echo"
    assert answer["get"] == {"x": "1"}


def test_an_absolute_form_target_without_a_host_is_refused(comet: ServerProcess) -> None:
    raw = b"GET http:///echo HTTP/1.1\r\nHost: x\r\n\r\n"
    assert exchange(comet.port, raw)[0].status == 400


def test_untrusted_forwarding_headers_never_reach_the_application(
        comet: ServerProcess) -> None:
    """Django trusts X-Forwarded-Proto for is_secure(): from a peer that is not a
    trusted proxy the forwarding headers are removed, and the scheme stays http."""
    raw = build_request("GET", "/echo", headers=[
        ("X-Forwarded-Proto", "https"), ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Host", "evil.example"), ("Forwarded", "for=203.0.113.7;proto=https"),
        ("X-Real-IP", "203.0.113.7"), ("X-Plain", "kept")])
    meta = echo_meta(comet, raw)[0]["meta"]
    assert meta["HTTP_X_PLAIN"] == "kept"
    assert not {"HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST",
                "HTTP_FORWARDED", "HTTP_X_REAL_IP"} & meta.keys()
    assert meta["wsgi.url_scheme"] == "http"
    assert meta["REMOTE_ADDR"] == "127.0.0.1"

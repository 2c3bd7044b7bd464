"""Production settings refuse to be insecure (issue 7): strict booleans, a real secret key
and allowed hosts with DJANGO_DEBUG=0, a clean ``check --deploy``, the site's own 404/500.

Settings are read once per process, so each environment is tried in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError
from django.core.management.utils import get_random_secret_key
from django.test import Client, RequestFactory, override_settings
from django.views.defaults import server_error

from comet_server.settings import parse_bool, setting_bool, setting_int
from tests.helpers.proc import PYTHON, ROOT

KEY = get_random_secret_key()  # 50 random characters
PRODUCTION = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": KEY,
              "DJANGO_ALLOWED_HOSTS": "chat.example.com"}
DEV_KEY = "dev-only-insecure-key-change-me-in-production"
PRINT_SETTINGS = textwrap.dedent("""
    import json
    from django.conf import settings
    names = ["DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "SECURE_PROXY_SSL_HEADER",
             "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
             "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
             "SECURE_CONTENT_TYPE_NOSNIFF"]
    print(json.dumps({name: getattr(settings, name) for name in names}))
""")


def run(argv: list[str], env: dict[str, str | None]) -> subprocess.CompletedProcess:
    """``argv`` under .venv's python in the repository, with a clean DJANGO_*/COMET_*
    environment plus ``env`` (a ``None`` value leaves that variable unset)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "COMET_"))}
    full["DJANGO_SETTINGS_MODULE"] = "chatsite.settings"
    full.update({k: v for k, v in env.items() if v is not None})
    return subprocess.run([PYTHON, *argv], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=120, check=False)


def production_settings(**changes: str | None) -> dict:
    result = run(["-c", PRINT_SETTINGS], {**PRODUCTION, **changes})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refusal(result: subprocess.CompletedProcess) -> str:
    """The one-line message of a start refused with ImproperlyConfigured."""
    assert result.returncode != 0, result.stdout
    last = result.stderr.strip().splitlines()[-1]
    prefix = "django.core.exceptions.ImproperlyConfigured: "
    assert last.startswith(prefix), result.stderr
    return last[len(prefix):]


# --- manage.py check --deploy and the production settings ---------------------------------

def test_check_deploy_is_clean_with_the_production_environment():
    result = run(["manage.py", "check", "--deploy"], PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "WARNINGS" not in result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_does_warn_about_development_settings():
    """The check above can fail: development settings do get warnings."""
    result = run(["manage.py", "check", "--deploy"], {})
    assert "WARNINGS" in result.stderr and "security.W018" in result.stderr  # DEBUG on


def test_production_is_https_behind_a_tls_proxy():
    values = production_settings()
    assert values["DEBUG"] is False
    assert values["ALLOWED_HOSTS"] == ["chat.example.com"]
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_HSTS_PRELOAD"] is False
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True


def test_operator_switches():
    values = production_settings(
        DJANGO_SECURE_SSL_REDIRECT="Off", DJANGO_HSTS_SECONDS="3600",
        DJANGO_HSTS_PRELOAD="yes", DJANGO_ALLOWED_HOSTS="chat.example.com, .example.org,",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://chat.example.com,https://admin.example.com")
    assert values["SECURE_SSL_REDIRECT"] is False  # plain-HTTP staging: no Secure cookies
    assert values["SESSION_COOKIE_SECURE"] is False and values["CSRF_COOKIE_SECURE"] is False
    assert values["SECURE_HSTS_SECONDS"] == 3600
    assert values["SECURE_HSTS_PRELOAD"] is True
    assert values["ALLOWED_HOSTS"] == ["chat.example.com", ".example.org"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://chat.example.com",
                                              "https://admin.example.com"]


def test_development_defaults_stay():
    result = run(["-c", "from django.conf import settings as s; "
                        "print(s.DEBUG, s.SECRET_KEY, s.ALLOWED_HOSTS, s.SECURE_SSL_REDIRECT)"], {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 2)[:2] == ["True", DEV_KEY]
    assert "'127.0.0.1', 'localhost', '[::1]'] False" in result.stdout


@pytest.mark.parametrize("changes,variable", [
    ({"DJANGO_SECRET_KEY": DEV_KEY}, "DJANGO_SECRET_KEY is the development key"),
    ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY is not set"),
    ({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY is not set"),
    ({"DJANGO_SECRET_KEY": KEY[:40]}, "DJANGO_SECRET_KEY is too weak"),
    ({"DJANGO_SECRET_KEY": "ab" * 40}, "DJANGO_SECRET_KEY is too weak"),
    ({"DJANGO_SECRET_KEY": "django-insecure-" + KEY}, "DJANGO_SECRET_KEY is too weak"),
    ({"DJANGO_ALLOWED_HOSTS": ""}, "DJANGO_ALLOWED_HOSTS is empty"),
    ({"DJANGO_ALLOWED_HOSTS": None}, "DJANGO_ALLOWED_HOSTS is empty"),
    ({"DJANGO_ALLOWED_HOSTS": " , "}, "DJANGO_ALLOWED_HOSTS is empty"),
    ({"DJANGO_DEBUG": "maybe"}, '"DJANGO_DEBUG" invalid: not a boolean: \'maybe\''),
    ({"DJANGO_DEBUG": ""}, '"DJANGO_DEBUG" invalid: not a boolean: \'\''),
    ({"DJANGO_SECURE_SSL_REDIRECT": "2"}, '"DJANGO_SECURE_SSL_REDIRECT" invalid'),
    ({"DJANGO_HSTS_PRELOAD": "t"}, '"DJANGO_HSTS_PRELOAD" invalid'),
    ({"DJANGO_HSTS_SECONDS": "a year"}, '"DJANGO_HSTS_SECONDS" invalid'),
    ({"DJANGO_HSTS_SECONDS": "-1"}, "DJANGO_HSTS_SECONDS must be 0 or more"),
])
def test_insecure_or_bad_production_settings_are_refused(changes, variable):
    message = refusal(run(["manage.py", "check", "--deploy"], {**PRODUCTION, **changes}))
    assert variable in message


@pytest.mark.parametrize("word", ["0", "false", "no", "off", "FALSE", "Off"])
def test_false_words_turn_debug_off(word):
    assert production_settings(DJANGO_DEBUG=word)["DEBUG"] is False


@pytest.mark.parametrize("word", ["1", "True", "YES", "on"])
def test_true_words_turn_debug_on(word):
    assert production_settings(DJANGO_DEBUG=word)["DEBUG"] is True


# --- comet_server's strict settings --------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    ("1", True), ("true", True), ("TRUE", True), ("Yes", True), ("on", True), (" on ", True),
    ("0", False), ("false", False), ("No", False), ("OFF", False), (True, True), (False, False),
])
def test_parse_bool_words(value, expected):
    assert parse_bool(value) is expected


@pytest.mark.parametrize("value", ["", "maybe", "2", "t", "y", "enabled", 1, 0, None])
def test_parse_bool_refuses_anything_else(value):
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool(value)


def test_setting_bool_reads_the_environment_strictly(monkeypatch):
    monkeypatch.delenv("COMET_TEST_FLAG", raising=False)
    assert setting_bool("COMET_TEST_FLAG", True) is True
    assert setting_bool("COMET_TEST_FLAG", False) is False
    monkeypatch.setenv("COMET_TEST_FLAG", "0")
    assert setting_bool("COMET_TEST_FLAG", True) is False
    monkeypatch.setenv("COMET_TEST_FLAG", "On")
    assert setting_bool("COMET_TEST_FLAG", False) is True
    monkeypatch.setenv("COMET_TEST_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match=r"^COMET_TEST_FLAG: not a boolean: 'maybe'"):
        setting_bool("COMET_TEST_FLAG", False)


def test_setting_bool_prefers_the_django_setting(monkeypatch):
    monkeypatch.setenv("COMET_TEST_FLAG", "0")
    with override_settings(COMET_TEST_FLAG=True):
        assert setting_bool("COMET_TEST_FLAG", False) is True
    with override_settings(COMET_TEST_FLAG="yes"):
        assert setting_bool("COMET_TEST_FLAG", False) is True
    with override_settings(COMET_TEST_FLAG=1), pytest.raises(ImproperlyConfigured):
        setting_bool("COMET_TEST_FLAG", False)


def test_setting_int(monkeypatch):
    monkeypatch.delenv("COMET_TEST_INT", raising=False)
    assert setting_int("COMET_TEST_INT", 5) == 5
    monkeypatch.setenv("COMET_TEST_INT", "12")
    assert setting_int("COMET_TEST_INT", 5, minimum=1) == 12
    for bad, message in [("1.5", "not a whole number: '1.5'"), ("0", "must be at least 1")]:
        monkeypatch.setenv("COMET_TEST_INT", bad)
        with pytest.raises(ImproperlyConfigured, match=f"^COMET_TEST_INT: {message}"):
            setting_int("COMET_TEST_INT", 5, minimum=1)


def test_comet_settings_work_without_django():
    code = textwrap.dedent("""
        import os, sys
        sys.modules["django"] = None  # any import of Django now fails
        from comet_server.settings import setting_bool
        os.environ["COMET_TEST_FLAG"] = "off"
        assert setting_bool("COMET_TEST_FLAG", True) is False
        os.environ["COMET_TEST_FLAG"] = "maybe"
        try:
            setting_bool("COMET_TEST_FLAG", True)
        except ValueError as exc:
            print(type(exc).__name__, exc)
    """)
    result = run(["-c", code], {"DJANGO_SETTINGS_MODULE": None})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ValueError COMET_TEST_FLAG: not a boolean: 'maybe' " \
                                    "(use 1/0, true/false, yes/no or on/off)"


def stats_public_default() -> bool:
    from comet_server.management.commands.runcomet import Command

    return Command().create_parser("manage.py", "runcomet").parse_args([]).stats_public


@pytest.mark.parametrize("value,expected", [("0", False), ("off", False), ("no", False),
                                            ("1", True), ("true", True), (None, False)])
def test_runcomet_stats_public_default_is_parsed_strictly(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("COMET_STATS_PUBLIC", raising=False)
    else:
        monkeypatch.setenv("COMET_STATS_PUBLIC", value)
    assert stats_public_default() is expected


def test_runcomet_refuses_a_bad_stats_public(monkeypatch):
    monkeypatch.setenv("COMET_STATS_PUBLIC", "sometimes")
    with pytest.raises(CommandError, match="COMET_STATS_PUBLIC: .*not a boolean: 'sometimes'"):
        stats_public_default()


# --- the site's own error pages ------------------------------------------------------------

def assert_site_page(html: str) -> None:
    assert '<header class="site-header">' in html
    assert '<a class="brand" href="/">Comet chat</a>' in html
    assert 'href="/static/rooms/chat.css"' in html


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/no-such-page/", "/rooms/no-such-room/"])
@override_settings(DEBUG=False)
def test_404_page_is_the_sites_own(url):
    response = Client().get(url)
    assert response.status_code == 404
    html = response.content.decode()
    assert_site_page(html)
    assert "<h1>Page not found</h1>" in html
    assert '<a href="/">Back to the rooms</a>' in html


@override_settings(DEBUG=False)
def test_500_page_is_the_sites_own():
    response = server_error(RequestFactory().get("/rooms/lobby/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert_site_page(html)
    assert "<h1>Something went wrong</h1>" in html
    assert '<a href="/">Back to the rooms</a>' in html

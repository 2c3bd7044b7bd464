"""Settings for the chat site.  Defaults are the embedded mode: SQLite, one process.

Environment variables override the defaults (booleans: 1/0, true/false, yes/no, on/off,
any case; anything else is refused):
DJANGO_DEBUG (default 1), DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS (comma-separated),
DJANGO_CSRF_TRUSTED_ORIGINS (comma-separated, e.g. https://chat.example.com),
DATABASE_URL (e.g. postgres:///test), COMET_BROKER (e.g. redis://127.0.0.1:6379/0).
With DJANGO_DEBUG=0 (production) the site is HTTPS behind a TLS-terminating proxy and
refuses to start without a real secret key and allowed hosts; DJANGO_SECURE_SSL_REDIRECT,
DJANGO_HSTS_SECONDS, DJANGO_HSTS_INCLUDE_SUBDOMAINS and DJANGO_HSTS_PRELOAD tune it.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured
from environs import Env, EnvError

from chatsite.rooms import conf as chat_settings
from comet_server.settings import parse_bool

BASE_DIR = Path(__file__).resolve().parent.parent

DEV_SECRET_KEY = "dev-only-insecure-key-change-me-in-production"
DEV_ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]


def _flag(value: str | bool) -> bool:
    """environs parser for booleans: comet_server's strict words (environs' own ``bool``
    is case-sensitive and also takes t/f/y/n)."""
    try:
        return parse_bool(value)
    except ValueError as exc:
        raise EnvError(str(exc)) from None


def _names(values: list[str]) -> list[str]:
    return [v.strip() for v in values if v.strip()]


env = Env()  # os.environ only: no .env file is read
env.add_parser("flag", _flag)

try:
    DEBUG = env.flag("DJANGO_DEBUG", True)
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", "") or (DEV_SECRET_KEY if DEBUG else "")
    ALLOWED_HOSTS = _names(env.list("DJANGO_ALLOWED_HOSTS", DEV_ALLOWED_HOSTS if DEBUG else []))
    CSRF_TRUSTED_ORIGINS = _names(env.list("DJANGO_CSRF_TRUSTED_ORIGINS", []))
    # comet_server: the broker that carries events between processes (unset: in-process).
    COMET_BROKER = env.str("COMET_BROKER", "")

    # The chat's settings (CHAT_*): defined, with their defaults, in chatsite/rooms/conf.py.
    globals().update(chat_settings.from_environment(env))

    if not DEBUG:
        # Production refuses to start rather than run with a guessable key or no host check.
        if not SECRET_KEY:
            raise ImproperlyConfigured(
                "DJANGO_SECRET_KEY is not set: with DJANGO_DEBUG=0 set it to 50+ random "
                "characters (django.core.management.utils.get_random_secret_key())")
        if SECRET_KEY == DEV_SECRET_KEY:
            raise ImproperlyConfigured(
                "DJANGO_SECRET_KEY is the development key: with DJANGO_DEBUG=0 set a secret "
                "one of 50+ random characters")
        if (len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH
                or len(set(SECRET_KEY)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
                or SECRET_KEY.startswith(SECRET_KEY_INSECURE_PREFIX)):
            raise ImproperlyConfigured(
                f"DJANGO_SECRET_KEY is too weak: with DJANGO_DEBUG=0 it needs "
                f"{SECRET_KEY_MIN_LENGTH}+ characters, {SECRET_KEY_MIN_UNIQUE_CHARACTERS}+ "
                f"different ones, and no {SECRET_KEY_INSECURE_PREFIX!r} prefix")
        if not ALLOWED_HOSTS:
            raise ImproperlyConfigured(
                "DJANGO_ALLOWED_HOSTS is empty: with DJANGO_DEBUG=0 list the site's host "
                "names, comma-separated (e.g. chat.example.com)")

        # HTTPS behind a TLS-terminating proxy (nginx) that sets X-Forwarded-Proto: only
        # safe when clients cannot reach runcomet without going through that proxy.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        # DJANGO_SECURE_SSL_REDIRECT=0 is for a plain-HTTP staging: no redirect to https,
        # and session/CSRF cookies without the Secure flag (browsers would not send them).
        SECURE_SSL_REDIRECT = env.flag("DJANGO_SECURE_SSL_REDIRECT", True)
        SESSION_COOKIE_SECURE = SECURE_SSL_REDIRECT
        CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT
        # HSTS: browsers use only https for the host for this long (sent on https answers
        # only).  Try a short DJANGO_HSTS_SECONDS (e.g. 3600) on a first deployment.
        SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", 365 * 24 * 3600,
                                      error_messages={"invalid": "not a whole number of "
                                                      "seconds: {input!r}"})  # type: ignore[call-overload]
        if SECURE_HSTS_SECONDS < 0:
            raise ImproperlyConfigured(
                f"DJANGO_HSTS_SECONDS must be 0 or more, got {SECURE_HSTS_SECONDS}")
        # includeSubDomains: on; it covers the subdomains of the site's own host name
        # (*.chat.example.com), not its siblings.  preload: off unless asked for, because a
        # browser preload list (submitted for the registrable domain) is slow to leave;
        # only then is Django's reminder about it (security.W021) silenced.
        SECURE_HSTS_INCLUDE_SUBDOMAINS = env.flag("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
        SECURE_HSTS_PRELOAD = env.flag("DJANGO_HSTS_PRELOAD", False)
        SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
        # Django's defaults, stated here so that weakening one is a visible change.
        SECURE_CONTENT_TYPE_NOSNIFF = True
        SECURE_REFERRER_POLICY = "same-origin"
        X_FRAME_OPTIONS = "DENY"
except EnvError as exc:  # one line: 'Environment variable "X" invalid: ...'
    raise ImproperlyConfigured(exc.args[0]) from None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "comet_server",
    "chatsite.demo",
    "chatsite.accounts",
    "chatsite.rooms",
    "chatsite.status",
]

MIDDLEWARE = [
    "comet_server.middleware.BadInputMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "comet_server.middleware.CometMiddleware",
]

ROOT_URLCONF = "chatsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "chatsite" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "chatsite.wsgi.application"

DATABASES = {
    # runcomet serves every request on one thread, so a persistent connection is one
    # connection per process; reconnecting per request cost PostgreSQL polls ~2.5 ms each.
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=60, conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (tests, a publishing command) may write at once.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    # A file test database: in-memory shared-cache SQLite fails ("table is locked")
    # instead of waiting when threads of a test read and write at once.  One per test
    # run (process), so two runs in one checkout do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3")}

# Rate limits count in Django's cache: Redis when COMET_BROKER is set, so that every
# process shares the counts; otherwise this process's memory (one process).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": COMET_BROKER,
        "KEY_PREFIX": "chat",
    } if COMET_BROKER else {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    },
}

LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "rooms:lobby"
LOGOUT_REDIRECT_URL = "rooms:lobby"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "chatsite" / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "comet_server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

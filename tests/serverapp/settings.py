"""A minimal Django project for black-box tests of the comet server itself."""

import os

SECRET_KEY = "tests-only"
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.staticfiles", "comet_server",
                  "chatsite.demo"]
MIDDLEWARE = ["comet_server.middleware.CometMiddleware"]
ROOT_URLCONF = "tests.serverapp.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
if os.environ.get("SERVERAPP_PG_NAME"):  # tests of database connections per thread
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.postgresql", "NAME": os.environ["SERVERAPP_PG_NAME"],
        "HOST": "127.0.0.1", "PORT": "5432",
        "USER": os.environ.get("SERVERAPP_PG_USER", ""),
        "CONN_MAX_AGE": int(os.environ.get("SERVERAPP_CONN_MAX_AGE", "0")),
        "OPTIONS": {"application_name": os.environ.get("SERVERAPP_PG_APP", "serverapp")},
    }}
USE_TZ = True
STATIC_URL = "static/"
COMET_BROKER = os.environ.get("COMET_BROKER", "")
TIME_ZONE = "UTC"

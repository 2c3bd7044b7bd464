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
USE_TZ = True
STATIC_URL = "static/"
COMET_BROKER = os.environ.get("COMET_BROKER", "")
TIME_ZONE = "UTC"

"""URLs of the chat site."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("chatsite.accounts.urls")),
    path("demo/", include("chatsite.demo.urls")),
    path("status/", include("chatsite.status.urls")),
    path("", include("chatsite.rooms.urls")),
]

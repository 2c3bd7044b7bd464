"""The staff's live status page and its JSON feed."""

from django.urls import path

from chatsite.status import views

app_name = "status"
urlpatterns = [
    path("", views.page, name="page"),
    path("feed", views.feed, name="feed"),
]

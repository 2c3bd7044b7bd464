from django.urls import path

from chat import views

urlpatterns = [
    path("", views.index, name="index"),
    path("messages", views.post, name="post"),
    path("updates", views.updates, name="updates"),  # the long-poll
    path("events", views.events, name="events"),  # the event stream (SSE)
]

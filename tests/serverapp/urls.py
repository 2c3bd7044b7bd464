from django.urls import include, path

from tests.serverapp import views

urlpatterns = [
    path("hello", views.hello),
    path("echo", views.echo),
    path("echo/<path:rest>", views.echo),
    path("wait/<str:channel>", views.wait),
    path("pub/<str:channel>", views.pub),
    path("stream/<str:channel>", views.stream),
    path("sse/<str:channel>", views.sse),
    path("ws/<str:channel>", views.ws),
    path("boom", views.boom),
    path("exit", views.exits),
    path("boom-midstream", views.boom_midstream),
    path("plain-stream", views.plain_stream),
    path("sleepy", views.sleepy),
    path("block", views.block),
    path("spin", views.spin),
    path("db-backend", views.db_backend),
    path("demo/", include("chatsite.demo.urls")),
]

"""The demo's URLs: the entry view and the stages its deferrals continue with."""

from django.urls import path

from chatsite.demo import views

app_name = "demo"
urlpatterns = [
    path("", views.demo, name="demo"),
    path("page/", views.page, name="page"),
    path("echo", views.echo, name="echo"),
    path("stage1/", views.stage1),
    path("stage2/", views.stage2),
    path("stage3/", views.stage3),
    path("last_stage4/", views.last_stage4),
]

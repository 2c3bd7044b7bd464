"""The demo's URLs: the entry view and the stages its deferrals continue with."""

from django.urls import path

from chatsite.demo import views

app_name = "demo"
urlpatterns = [
    path("", views.demo, name="demo"),
    path("page/", views.page, name="page"),
    path("echo", views.echo, name="echo"),
    path("stage<int:number>/", views.stage),
    path("last_stage4/", views.last_stage4),
]

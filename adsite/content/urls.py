"""The publication's pages."""

from django.urls import path

from adsite.content import views

app_name = "content"

urlpatterns = [
    path("", views.home, name="home"),
    path("category/<slug:slug>/", views.category_detail, name="category"),
    path("article/<slug:slug>/", views.article_detail, name="article"),
    path("about/", views.about, name="about"),
]

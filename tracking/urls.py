"""Tracking URLs: the beacon endpoint and the server-to-server events API."""

from django.urls import path

from tracking import views
from tracking.ratelimit import rate_limited

urlpatterns = [
    path("collect", rate_limited("collect")(views.CollectView.as_view()), name="collect"),
    path("api/v1/events", views.EventsApiView.as_view(), name="events-api"),
    path("api/v1/users/<str:user_id>/data", views.UserDataDeleteView.as_view(), name="user-data-delete"),
]

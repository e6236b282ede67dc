"""Site URLs. The fixed paths come from DESIGN.md; each app owns its own urls module."""

from django.contrib import admin
from django.urls import include, path

from adsite.ops import views as ops_views

urlpatterns = [
    path("healthz", ops_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("tracking.urls")),
    path("", include("inference.urls")),
    path("", include("adsite.content.urls")),
]

"""Site URLs. The fixed paths come from DESIGN.md; each app owns its own urls module."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from adsite.ops import views as ops_views

urlpatterns = [
    path("favicon.ico", ops_views.favicon, name="favicon"),
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("dashboard/", include("adsite.dashboard.urls")),
    path("", include("tracking.urls")),
    path("", include("inference.urls")),
    path("", include("adsite.ads.urls")),
    path("", include("adsite.content.urls")),
]

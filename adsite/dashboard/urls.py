"""Dashboard URLs (mounted at /dashboard/). Every view is staff-only; actions are POST."""

from django.contrib.auth import views as auth_views
from django.urls import path

from adsite.dashboard import views
from adsite.dashboard.forms import StaffAuthenticationForm

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="dashboard/login.html", authentication_form=StaffAuthenticationForm
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("overview.json", views.overview_json, name="overview-json"),
    path("models/", views.models, name="models"),
    path("models/compare", views.models_compare, name="models-compare"),
    path("models/train", views.model_train, name="model-train"),
    path("models/training.json", views.training_run_json, name="training-json"),
    path("models/shadow", views.model_shadow, name="model-shadow"),
    path("models/shadow/stop", views.model_shadow_stop, name="model-shadow-stop"),
    path("models/<str:version>/activate", views.model_activate, name="model-activate"),
    path("models/<str:version>/retire", views.model_retire, name="model-retire"),
    path("models/<str:algorithm>/rollback", views.model_rollback, name="model-rollback"),
    path("analytics/", views.analytics, name="analytics"),
    path("ads/report/", views.ads_report, name="ads-report"),
    path("visitors/", views.visitors, name="visitors"),
    path("visitors/<str:user_id>/delete", views.visitor_delete, name="visitor-delete"),
    path("quality/", views.quality, name="quality"),
    path("quality/replay", views.quarantine_replay, name="quarantine-replay"),
    path("audit/", views.audit, name="audit"),
    path("ads/", views.ads, name="ads"),
    path("ads/campaigns/new", views.campaign_form, name="ads-campaign-new"),
    path("ads/campaigns/<int:campaign_id>/", views.ads_campaign, name="ads-campaign"),
    path("ads/campaigns/<int:campaign_id>/edit", views.campaign_form, name="ads-campaign-edit"),
    path("ads/campaigns/<int:campaign_id>/<str:action>", views.campaign_status, name="ads-campaign-status"),
    path("ads/creatives/new", views.creative_form, name="ads-creative-new"),
    path("ads/creatives/<int:creative_id>/edit", views.creative_form, name="ads-creative-edit"),
    path("ads/creatives/<int:creative_id>/preview", views.creative_preview, name="ads-creative-preview"),
    path("ads/creatives/<int:creative_id>/<str:action>", views.creative_status, name="ads-creative-status"),
]

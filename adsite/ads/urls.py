from django.urls import path, re_path

from adsite.ads import views

urlpatterns = [
    path("api/v1/ads/decisions", views.DecisionsView.as_view(), name="ads-decisions"),
    path("c/<str:token>", views.click_redirect, name="ads-click"),
    path("i/<str:token>", views.impression_beacon, name="ads-view"),
    path("edge/ads", views.edge_offers_view, name="ads-edge-offers"),
    path("edge/ads/serve", views.edge_serve_view, name="ads-edge-serve"),
    re_path(r"^media/ads/(?P<name>[A-Za-z0-9._-]{1,120})$", views.creative_image, name="ads-image"),
]

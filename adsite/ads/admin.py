"""Django admin for advertisers, campaigns, creatives and placements (and the click/explanation trail).

Saving anything here drops this process's catalog at once; other processes pick the change up within
``ADS["CATALOG_SECONDS"]``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from adsite.ads.models import AdClick, Advertiser, Campaign, Creative, DecisionExplanation, Placement


class CatalogChangeMixin:
    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)  # type: ignore[misc]
        from adsite.ads.catalog import catalog_invalidate

        catalog_invalidate()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)  # type: ignore[misc]
        from adsite.ads.catalog import catalog_invalidate

        catalog_invalidate()


class CreativeInline(admin.StackedInline):
    model = Creative
    extra = 0
    fields = ("name", "kind", "size", "image", "headline", "body", "cta", "landing_url", "html", "active")


@admin.register(Advertiser)
class AdvertiserAdmin(CatalogChangeMixin, admin.ModelAdmin):
    list_display = ("name", "website", "created_at")
    search_fields = ("name",)


@admin.register(Campaign)
class CampaignAdmin(CatalogChangeMixin, admin.ModelAdmin):
    list_display = ("name", "advertiser", "status", "tier", "pricing", "bid", "daily_budget", "total_budget")
    list_filter = ("status", "tier", "pricing")
    search_fields = ("name", "advertiser__name")
    list_select_related = ("advertiser",)
    inlines = [CreativeInline]
    fieldsets = (
        (None, {"fields": ("advertiser", "name", "status", "tier", "starts_at", "ends_at")}),
        ("Money", {"fields": ("pricing", "bid", "daily_budget", "total_budget")}),
        ("Targeting", {"fields": ("interests", "interest_min_score", "devices", "hours")}),
        ("Frequency caps", {"fields": ("cap_per_hour", "cap_per_day")}),
    )


@admin.register(Creative)
class CreativeAdmin(CatalogChangeMixin, admin.ModelAdmin):
    list_display = ("name", "campaign", "kind", "size", "active")
    list_filter = ("kind", "size", "active")
    search_fields = ("name", "headline", "campaign__name")
    list_select_related = ("campaign",)


@admin.register(Placement)
class PlacementAdmin(CatalogChangeMixin, admin.ModelAdmin):
    list_display = ("name", "size", "description")


@admin.register(AdClick)
class AdClickAdmin(admin.ModelAdmin):
    list_display = ("created_at", "outcome", "creative_id", "placement", "user_id", "price_micros")
    list_filter = ("outcome",)
    readonly_fields = [f.name for f in AdClick._meta.fields]


@admin.register(DecisionExplanation)
class DecisionExplanationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "decision_id", "user_id")
    readonly_fields = ("decision_id", "created_at", "user_id", "explanation")

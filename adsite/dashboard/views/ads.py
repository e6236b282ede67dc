"""Ads: campaigns and creatives, their status, forms and previews."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from adsite.dashboard import forms as dashboard_forms
from adsite.dashboard import services
from adsite.dashboard.access import staff_required
from adsite.dashboard.rollup import rollup_refresh_if_stale
from adsite.dashboard.selectors import ads as ads_reads
from adsite.dashboard.views.overview import _window


@require_GET
@staff_required
def ads(request: HttpRequest) -> HttpResponse:
    rollup_refresh_if_stale(page_view=True)
    window = _window(request)
    return render(
        request, "dashboard/ads.html", {"page": "ads", "window": window, **ads_reads.ads_page(window=window)}
    )


@require_GET
@staff_required
def ads_campaign(request: HttpRequest, campaign_id: int) -> HttpResponse:
    rollup_refresh_if_stale(page_view=True)
    window = _window(request)
    page = ads_reads.ads_campaign_page(campaign_id=campaign_id, window=window)
    if page is None:
        raise Http404("no such campaign")
    return render(request, "dashboard/ads_campaign.html", {"page": "ads", "window": window, **page})


def _ads_back(request: HttpRequest, fallback: str) -> HttpResponse:
    """Back to the page the action came from (a dashboard path only), else ``fallback``."""
    back = request.POST.get("next", "")
    if back.startswith("/dashboard/") and "//" not in back and "\\" not in back:
        return redirect(back)
    return redirect(fallback)


@require_POST
@staff_required
def campaign_status(request: HttpRequest, campaign_id: int, action: str) -> HttpResponse:
    status = {"pause": "paused", "resume": "active"}.get(action)
    if status is None:
        raise Http404
    try:
        campaign = services.campaign_status_set(actor=request.user, campaign_id=campaign_id, status=status)
    except services.ActionFailed as exc:
        messages.error(request, str(exc))
    else:
        done = "paused: it is no longer chosen" if status == "paused" else "resumed"
        messages.success(request, f"Campaign {campaign.name} {done}.")
    return _ads_back(request, reverse("dashboard:ads"))


@require_POST
@staff_required
def creative_status(request: HttpRequest, creative_id: int, action: str) -> HttpResponse:
    active = {"pause": False, "resume": True}.get(action)
    if active is None:
        raise Http404
    try:
        creative = services.creative_active_set(actor=request.user, creative_id=creative_id, active=active)
    except services.ActionFailed as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Creative {creative.name} {'resumed' if active else 'paused'}.")
    return _ads_back(request, reverse("dashboard:ads"))


@require_http_methods(["GET", "POST"])
@staff_required
def campaign_form(request: HttpRequest, campaign_id: int | None = None) -> HttpResponse:
    """GET: the form (new, or the campaign's values); POST: validate, save through the ads service."""
    from adsite.ads import selectors as ads_selectors

    instance = None
    if campaign_id is not None:
        instance = ads_selectors.campaign_get(campaign_id=campaign_id)
        if instance is None:
            raise Http404("no such campaign")
    form = dashboard_forms.CampaignForm(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.campaign_save(
                actor=request.user,
                fields=form.cleaned_data,
                campaign_id=campaign_id,
                changed=form.changed_data,
            )
        except services.ActionFailed as exc:
            messages.error(request, f"Not saved: {exc}")
        else:
            messages.success(request, f"Saved {saved}.")
            return redirect("dashboard:ads-campaign", campaign_id=saved.id)
    return render(
        request,
        "dashboard/ads_form.html",
        {"page": "ads", "form": form, "kind": "campaign", "instance": instance},
    )


@require_http_methods(["GET", "POST"])
@staff_required
def creative_form(request: HttpRequest, creative_id: int | None = None) -> HttpResponse:
    from adsite.ads import selectors as ads_selectors

    instance = None
    if creative_id is not None:
        instance = ads_selectors.creative_get(creative_id=creative_id)
        if instance is None:
            raise Http404("no such creative")
    initial = (
        {"campaign": request.GET.get("campaign")}
        if instance is None and request.GET.get("campaign", "").isdigit()
        else None
    )
    form = dashboard_forms.CreativeForm(
        request.POST or None, request.FILES or None, instance=instance, initial=initial
    )
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.creative_save(
                actor=request.user,
                fields=form.cleaned_data,
                creative_id=creative_id,
                changed=form.changed_data,
            )
        except services.ActionFailed as exc:
            messages.error(request, f"Not saved: {exc}")
        else:
            messages.success(request, f"Saved creative {saved.name}.")
            return redirect("dashboard:ads-campaign", campaign_id=saved.campaign_id)
    return render(
        request,
        "dashboard/ads_form.html",
        {"page": "ads", "form": form, "kind": "creative", "instance": instance},
    )


@require_GET
@staff_required
@xframe_options_sameorigin
def creative_preview(request: HttpRequest, creative_id: int) -> HttpResponse:
    """The creative as the site's ad slot renders it (the site's markup and stylesheet), shown by the
    campaign page in an ``<iframe sandbox="">``; an HTML creative sits in the slot's own sandboxed
    ``srcdoc`` iframe, exactly as on the site."""
    from adsite.ads import selectors as ads_selectors
    from adsite.content.placements import SlotAd

    creative = ads_selectors.creative_get(creative_id=creative_id)
    if creative is None:
        raise Http404("no such creative")
    placement = request.GET.get("placement", "sidebar")
    if placement not in ("leaderboard", "sidebar", "in_article", "footer"):
        placement = "sidebar"
    ad = SlotAd(
        placement=placement,
        creative_id=str(creative.id),
        campaign_id=str(creative.campaign_id),
        headline=creative.headline,
        body=creative.body,
        cta=creative.cta,
        href=creative.landing_url,
        sponsor=creative.campaign.advertiser.name,
        house=creative.campaign.tier == "house",
        image_url=creative.image.url if creative.image else "",
        html=creative.html if creative.kind == "html" else "",
        reason="preview",
    )
    return render(request, "dashboard/ads_preview.html", {"ad": ad, "placement": placement})

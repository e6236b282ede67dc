"""Dashboard views: thin. Each validates its input, calls one selector (pages) or one service
(actions: POST only, CSRF-checked, audited by the service), then renders or redirects."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from adsite.dashboard import forms as dashboard_forms
from adsite.dashboard import services
from adsite.dashboard.access import staff_required
from adsite.dashboard.conf import dashboard_setting
from adsite.dashboard.rollup import rollup_refresh_if_stale
from adsite.dashboard.selectors import ads as ads_reads
from adsite.dashboard.selectors import audit as audit_reads
from adsite.dashboard.selectors import models as models_reads
from adsite.dashboard.selectors import overview as overview_reads
from adsite.dashboard.selectors import quality as quality_reads
from adsite.dashboard.selectors import visitors as visitors_reads
from adsite.dashboard.selectors.windows import WINDOWS


def _window(request: HttpRequest) -> str:
    window = request.GET.get("window", "hour")
    return window if window in WINDOWS else "hour"


@require_GET
@staff_required
def overview(request: HttpRequest) -> HttpResponse:
    rollup_refresh_if_stale()
    window = _window(request)
    return render(
        request,
        "dashboard/overview.html",
        {
            "page": "overview",
            "window": window,
            "o": overview_reads.overview_get(window=window),
            "refresh_seconds": dashboard_setting("REFRESH_SECONDS"),
        },
    )


@require_GET
@staff_required
def overview_json(request: HttpRequest) -> JsonResponse:
    rollup_refresh_if_stale()
    return JsonResponse(overview_reads.overview_get(window=_window(request)))


# --- models ---------------------------------------------------------------------------------------


@require_GET
@staff_required
def models(request: HttpRequest) -> HttpResponse:
    rollup_refresh_if_stale()  # the shadow's agreement and the latencies come from the snapshots
    return render(
        request,
        "dashboard/models.html",
        {"page": "models", "after": request.GET.get("after", ""), **models_reads.models_page()},
    )


@require_GET
@staff_required
def training_run_json(request: HttpRequest) -> JsonResponse:
    run_id = request.GET.get("id")
    run = models_reads.training_run_get(run_id=int(run_id) if run_id and run_id.isdigit() else None)
    return JsonResponse({"run": run})


class TrainForm(forms.Form):
    algorithm = forms.ChoiceField(choices=[("all", "all"), ("gbdt", "gbdt"), ("neural", "neural")])
    activate = forms.ChoiceField(choices=[("never", "never"), ("auto", "auto"), ("always", "always")])


def _run(request: HttpRequest, call: object, done: str) -> None:
    try:
        call()  # type: ignore[operator]
    except services.ActionFailed as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)


@require_POST
@staff_required
def model_train(request: HttpRequest) -> HttpResponse:
    form = TrainForm(request.POST)
    previous = models_reads.training_run_get()
    after = previous["id"] if previous else 0
    if not form.is_valid():
        messages.error(request, "Choose an algorithm and an activation policy.")
    else:
        _run(
            request,
            lambda: services.training_start(actor=request.user, **form.cleaned_data),
            "Training started: its progress is shown below.",
        )
    return redirect(reverse("dashboard:models") + f"?after={after}#training")


@require_POST
@staff_required
def model_activate(request: HttpRequest, version: str) -> HttpResponse:
    _run(
        request,
        lambda: services.model_activate(actor=request.user, version=version),
        f"{version} is now serving.",
    )
    return redirect("dashboard:models")


@require_POST
@staff_required
def model_retire(request: HttpRequest, version: str) -> HttpResponse:
    _run(
        request, lambda: services.model_retire(actor=request.user, version=version), f"{version} is retired."
    )
    return redirect("dashboard:models")


@require_POST
@staff_required
def model_rollback(request: HttpRequest, algorithm: str) -> HttpResponse:
    _run(
        request,
        lambda: services.model_rollback(actor=request.user, algorithm=algorithm),
        f"{algorithm} rolled back to the version that served before.",
    )
    return redirect("dashboard:models")


class ShadowForm(forms.Form):
    version = forms.CharField(max_length=64)
    sample_percent = forms.FloatField(min_value=0.01, max_value=100.0, label="Sample (%)")
    top_k = forms.IntegerField(min_value=1, max_value=20, initial=5, label="Top-k")


@require_POST
@staff_required
def model_shadow(request: HttpRequest) -> HttpResponse:
    form = ShadowForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "Choose a version, a sample between 0.01 and 100 %, and a top-k from 1 to 20."
        )
    else:
        data = form.cleaned_data
        _run(
            request,
            lambda: services.shadow_set(
                actor=request.user,
                version=data["version"],
                sample_rate=data["sample_percent"] / 100.0,
                top_k=data["top_k"],
            ),
            f"{data['version']} now shadows {data['sample_percent']:g}% of model-served requests "
            "(web processes pick it up on their next poll).",
        )
    return redirect(reverse("dashboard:models") + "#shadow")


@require_POST
@staff_required
def model_shadow_stop(request: HttpRequest) -> HttpResponse:
    _run(request, lambda: services.shadow_stop(actor=request.user), "Shadow mode is off.")
    return redirect(reverse("dashboard:models") + "#shadow")


@require_GET
@staff_required
def models_compare(request: HttpRequest) -> HttpResponse:
    picked = request.GET.getlist("v")
    a, b = (picked + ["", ""])[:2] if picked else (request.GET.get("a", ""), request.GET.get("b", ""))
    comparison = models_reads.models_compare(a=a, b=b) if a and b else None
    if (a or b) and comparison is None:
        messages.error(request, "Pick two existing versions to compare.")
    return render(
        request,
        "dashboard/compare.html",
        {"page": "models", "a": a, "b": b, "comparison": comparison, **models_reads.models_page()},
    )


# --- analytics and reports ------------------------------------------------------------------------


def _period(request: HttpRequest) -> Any:
    from adsite.dashboard.analytics import period_parse

    return period_parse(
        range_=request.GET.get("range", "7d"), start=request.GET.get("start", ""), end=request.GET.get("end", "")
    )


def _csv_query(period: Any) -> str:
    """The query string of this period's CSV links (``&table=<name>`` is added per table)."""
    from urllib.parse import urlencode

    return urlencode({"format": "csv", "range": "custom", "start": period.start, "end": period.last})


def _csv(filename: str, header: list[str], rows: list[list[Any]]) -> HttpResponse:
    import csv

    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows(rows)
    return response


def _csv_safe(value: Any) -> Any:
    # a cell a spreadsheet would run as a formula (=, +, -, @ first) is written as text
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@require_GET
@staff_required
def analytics(request: HttpRequest) -> HttpResponse:
    from adsite.dashboard import analytics as site_analytics

    rollup_refresh_if_stale()
    period = _period(request)
    if request.GET.get("format") == "csv":
        table = request.GET.get("table", "")
        if table == "visitors":
            listed = site_analytics.visitors_list(period=period, limit=100_000)
            header = ["visitor", "visits", "pageviews", "engaged_seconds", "first_seen", "last_seen"]
            data = [
                [r["user_id"], r["visits"], r["pageviews"], round(r["engaged"] or 0, 1),
                 r["first_seen"].isoformat(), r["last_seen"].isoformat()]
                for r in listed["rows"]
            ]
        elif table == "daily":
            chart = site_analytics.analytics_report(period=period)["chart"]
            header = ["bucket", *[d["label"] for d in chart["datasets"]]]
            data = [[label, *[d["data"][i] for d in chart["datasets"]]] for i, label in enumerate(chart["labels"])]
        elif table in site_analytics.TABLES:
            rows = site_analytics.analytics_tables(period=period, limit=10_000)[table]
            header = list(rows[0].keys()) if rows else ["key"]
            data = [list(r.values()) for r in rows]
        else:
            raise Http404("no such table")
        return _csv(
            f"analytics-{table}-{period.label.replace(' – ', '-to-')}.csv",
            header, [[_csv_safe(v) for v in row] for row in data],
        )
    report = site_analytics.analytics_report(period=period)
    return render(
        request,
        "dashboard/analytics.html",
        {
            "page": "analytics",
            "r": report,
            "period": period,
            "chart": report["chart"],
            "period_choices": site_analytics.PERIOD_CHOICES,
            "tiles": site_analytics.TILES,
            "tables": site_analytics.TABLE_TITLES,
            "csv": _csv_query(period),
        },
    )


@require_GET
@staff_required
def ads_report(request: HttpRequest) -> HttpResponse:
    from adsite.dashboard import adops
    from adsite.dashboard.analytics import PERIOD_CHOICES
    from adsite.dashboard.templatetags.dashboard_format import CTR_DEFINITION

    rollup_refresh_if_stale()
    period = _period(request)
    report = adops.adops_report(
        period=period,
        window=_window(request) if request.GET.get("window") else "day",
        campaign_id=request.GET.get("campaign", "")[:32],
    )
    if request.GET.get("format") == "csv":
        table = request.GET.get("table", "")
        if table == "days":
            header = ["day", "campaign_id", "campaign", "served", "viewable", "viewable_rate", "clicks",
                      f"ctr ({CTR_DEFINITION})", "ecpm", "spend"]
            data = [[r["day"].isoformat(), r["campaign_id"], r["campaign"], r["served"], r["viewable"],
                     r["viewable_rate"], r["clicks"], r["ctr"], r["ecpm"], round(r["spend"], 6)] for r in report["days"]]
        elif table == "campaigns":
            header = ["campaign_id", "campaign", "days", "served", "viewable", "viewable_rate", "clicks",
                      f"ctr ({CTR_DEFINITION})", "ecpm", "spend"]
            data = [[t["campaign_id"], t["campaign"], t["days"], t["served"], t["viewable"], t["viewable_rate"],
                     t["clicks"], t["ctr"], t["ecpm"], round(t["spend"], 6)] for t in report["campaigns"]]
        elif table == "fill":
            header = ["placement", "asked", "paid", "house", "builtin", "fill_rate"]
            data = [[f["placement"], f["asked"], f["paid"], f["house"], f["builtin"], f["fill_rate"]] for f in report["fill"]]
        elif table == "invalid":
            header = ["reason", "impressions", "clicks"]
            data = [[r["reason"], r["impressions"], r["clicks"]] for r in report["invalid"]["rows"]]
        else:
            raise Http404("no such table")
        return _csv(f"ads-{table}-{period.start}.csv", header, [[_csv_safe(v) for v in row] for row in data])
    return render(
        request,
        "dashboard/ads_report.html",
        {
            "page": "ads",
            "r": report,
            "period": period,
            "pacing": report["pacing"],
            "period_choices": PERIOD_CHOICES,
            "csv": _csv_query(period),
        },
    )


# --- visitors -------------------------------------------------------------------------------------


class VisitorForm(forms.Form):
    user_id = forms.CharField(max_length=64, strip=True, label="Visitor id")

    def clean_user_id(self) -> str:
        # the site's one user id rule: an id no visitor can have (a '/' has no delete link) is an error
        from inference import api as inference_api

        value = self.cleaned_data["user_id"]
        if not inference_api.user_id_valid(value):
            raise forms.ValidationError(f"A visitor id {inference_api.USER_ID_RULE}.")
        return value


@require_GET
@staff_required
def visitors(request: HttpRequest) -> HttpResponse:
    from adsite.dashboard import analytics as site_analytics

    form = VisitorForm(request.GET if request.GET.get("user_id") else None)
    visitor, not_found = None, ""
    if form.is_bound and form.is_valid():
        user_id = form.cleaned_data["user_id"]
        if site_analytics.visitor_known(user_id=user_id):
            visitor = visitors_reads.visitor_get(user_id=user_id)
        else:  # an id nothing is stored under: say so, not a cold-start profile
            not_found = user_id
    query = request.GET.get("q", "").strip()[:64]
    period = _period(request) if request.GET.get("range") else None
    offset = request.GET.get("offset", "")
    listed = (
        site_analytics.visitors_list(query=query, period=period, offset=int(offset) if offset.isdigit() else 0)
        if visitor is None
        else None
    )
    context = {
        "page": "visitors",
        "form": form,
        "visitor": visitor,
        "not_found": not_found,
        "q": query,
        "period": period,
        "listed": listed,
    }
    if visitor is not None:
        context.update(
            profile_rows=visitor["profile_rows"],
            profile_chart=visitor["profile_chart"],
            interests_chart=visitor["interests_chart"],
        )
    return render(request, "dashboard/visitors.html", context)


@staff_required
def visitor_delete(request: HttpRequest, user_id: str) -> HttpResponse:
    """GET: the confirmation page; POST (with ``confirm`` equal to the id): delete."""
    if request.method == "POST":
        if request.POST.get("confirm", "") != user_id:
            messages.error(request, "Type the visitor id to confirm the deletion.")
            return redirect("dashboard:visitor-delete", user_id=user_id)
        try:
            result = services.visitor_delete(actor=request.user, user_id=user_id)
        except services.ActionFailed as exc:
            messages.error(request, f"Deletion failed: {exc}")
        else:
            messages.success(
                request,
                f"Deleted {user_id}: {result.events} events, {result.quarantined} quarantined rows, features.",
            )
        return redirect(reverse("dashboard:visitors") + f"?user_id={user_id}")
    if request.method != "GET":
        raise Http404
    return render(request, "dashboard/visitor_delete.html", {"page": "visitors", "user_id": user_id})


# --- data quality ---------------------------------------------------------------------------------


@require_GET
@staff_required
def quality(request: HttpRequest) -> HttpResponse:
    rollup_refresh_if_stale()
    reason = request.GET.get("reason") or None
    before = request.GET.get("before", "")
    page = quality_reads.quality_page(reason=reason, before_id=int(before) if before.isdigit() else None)
    return render(request, "dashboard/quality.html", {"page": "quality", "reason": reason, **page})


@require_POST
@staff_required
def quarantine_replay(request: HttpRequest) -> HttpResponse:
    ids = [int(value) for value in request.POST.getlist("ids") if value.isdigit()][:1000]
    if not ids:
        messages.error(request, "Select quarantined events to replay.")
    else:
        try:
            result = services.quarantine_replay(actor=request.user, ids=ids)
        except services.ActionFailed as exc:
            messages.error(request, f"Replay failed: {exc}")
        else:
            messages.success(
                request,
                f"Replayed {result.replayed}: {result.accepted} accepted, {result.duplicate} duplicates, "
                f"{result.rejected} still rejected, {result.unreadable} unreadable.",
            )
    return redirect("dashboard:quality")


# --- audit ----------------------------------------------------------------------------------------


@require_GET
@staff_required
def audit(request: HttpRequest) -> HttpResponse:
    before, after = request.GET.get("before", ""), request.GET.get("after", "")
    trail = audit_reads.audit_page(
        kind=request.GET.get("kind", ""),
        actor=request.GET.get("actor", "")[:150],
        query=request.GET.get("q", "").strip()[:100],
        before_id=int(before) if before.isdigit() else None,
        after_id=int(after) if after.isdigit() else None,
    )
    return render(
        request, "dashboard/audit.html", {"page": "audit", "trail": trail, "kinds": audit_reads.ACTION_KINDS}
    )


# --- ads ------------------------------------------------------------------------------------------


@require_GET
@staff_required
def ads(request: HttpRequest) -> HttpResponse:
    rollup_refresh_if_stale()
    window = _window(request)
    return render(
        request, "dashboard/ads.html", {"page": "ads", "window": window, **ads_reads.ads_page(window=window)}
    )


@require_GET
@staff_required
def ads_campaign(request: HttpRequest, campaign_id: int) -> HttpResponse:
    rollup_refresh_if_stale()
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

"""The overview page and its JSON (the window the dashboard pages show)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from adsite.dashboard.access import staff_required
from adsite.dashboard.conf import dashboard_setting
from adsite.dashboard.rollup import rollup_refresh_if_stale
from adsite.dashboard.selectors import overview as overview_reads
from adsite.dashboard.selectors.windows import WINDOWS


def _window(request: HttpRequest) -> str:
    window = request.GET.get("window", "hour")
    return window if window in WINDOWS else "hour"


@require_GET
@staff_required
def overview(request: HttpRequest) -> HttpResponse:
    rollup_refresh_if_stale(page_view=True)
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
    rollup_refresh_if_stale(page_view=True)
    return JsonResponse(overview_reads.overview_get(window=_window(request)))

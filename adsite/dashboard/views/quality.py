"""Data quality: the quality page and the quarantine's replay."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from adsite.dashboard import services
from adsite.dashboard.access import staff_required
from adsite.dashboard.rollup import rollup_refresh_if_stale
from adsite.dashboard.selectors import quality as quality_reads


@require_GET
@staff_required
def quality(request: HttpRequest) -> HttpResponse:
    rollup_refresh_if_stale(page_view=True)
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

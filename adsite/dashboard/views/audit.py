"""The audit log."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from adsite.dashboard.access import staff_required
from adsite.dashboard.selectors import audit as audit_reads


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

"""Visitors: the list, one visitor's data, deletion."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from adsite.dashboard import services
from adsite.dashboard.access import staff_required
from adsite.dashboard.selectors import visitors as visitors_reads
from adsite.dashboard.views.reports import _period


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

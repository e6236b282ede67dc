"""The models page: training runs, activation, retirement, rollback, shadow, comparison."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from adsite.dashboard import services
from adsite.dashboard.access import staff_required
from adsite.dashboard.rollup import rollup_refresh_if_stale
from adsite.dashboard.selectors import models as models_reads


@require_GET
@staff_required
def models(request: HttpRequest) -> HttpResponse:
    rollup_refresh_if_stale(page_view=True)  # the shadow's agreement and the latencies come from the snapshots
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

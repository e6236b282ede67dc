"""Liveness and readiness probes."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process serves requests. Touches no dependency on purpose."""
    return JsonResponse({"status": "ok"})

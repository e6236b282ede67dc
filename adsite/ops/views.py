"""Liveness and readiness probes, the Prometheus metrics endpoint, and the site icon."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

# the site's own pages carry this icon inline; pages that do not (the Django admin) make browsers ask here
_FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" '
    'fill="#a4161a"/><text x="16" y="23" font-family="Georgia,serif" font-size="20" text-anchor="middle" '
    'fill="white">B</text></svg>'
)


def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico``: the site's icon (SVG), so no page logs a 404 for it."""
    response = HttpResponse(_FAVICON, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process serves requests. Touches no dependency on purpose."""
    return JsonResponse({"status": "ok"})


def _problem(check: str, exc: BaseException) -> str:
    """What a probe says about a failure: the exception's class only. The text (host names, ports,
    user names, file paths) goes to the log, never to an unauthenticated answer."""
    logger.warning("ops.readyz_check_failed %s: %r", check, exc)
    return type(exc).__name__


def _database_check() -> str | None:
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return _problem("database", exc)
    return None


# how far Redis's clock may be from this host's before the probe warns: the ad ledger's reservations carry a
# deadline of this host's clock plus a 250 ms reply timeout that Redis checks against its own clock
CLOCK_OFFSET_WARN_MS = 50.0


def _redis_clock_offset_ms(client: Any) -> float:
    """Redis's clock minus this host's, in milliseconds (one ``TIME``, against the middle of its round trip)."""
    sent = time.time()
    seconds, micros = client.time()
    here = (sent + time.time()) / 2
    offset = round((int(seconds) + int(micros) / 1e6 - here) * 1000, 1)
    if abs(offset) > CLOCK_OFFSET_WARN_MS:
        logger.warning("ops.redis_clock_offset %.1f ms: keep this host's and Redis's clocks synchronised (NTP)", offset)
    return offset


def _redis_check() -> tuple[str | None, list[dict[str, object]], float | None]:
    """(problem, the cluster's nodes, Redis's clock minus this host's in ms): on a Redis Cluster every master
    must answer and the cluster say ``cluster_state:ok``; ``[]`` nodes on one Redis."""
    from django.conf import settings

    from inference.api import cluster_nodes, redis_client

    client = redis_client(settings.REDIS_URL, timeout="probe")  # a probe must answer quickly even when Redis hangs
    nodes: list[dict[str, object]] = []
    try:
        if settings.REDIS_CLUSTER:
            from redis.cluster import RedisCluster

            nodes = list(cluster_nodes(client))
            client.ping(target_nodes=RedisCluster.PRIMARIES)  # type: ignore[call-arg]
            state = client.cluster_info().get("cluster_state")  # type: ignore[attr-defined]
            if state != "ok":
                return f"cluster_state:{state}", nodes, None
        offset = _redis_clock_offset_ms(client)  # one node's clock on a cluster; on one Redis, the ping
    except Exception as exc:
        return _problem("redis", exc), nodes, None
    return None, nodes, offset


# a marker this process leaves in the metrics directory the first time it looks: a directory removed
# and made again (another server's start) lacks it, and this process's metrics files are gone with it
_METRICS_DIR_MARKED: set[str] = set()


def _metrics_dir_check() -> str | None:
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if not os.path.isdir(metrics_dir):
        return f"{metrics_dir} is missing"
    marker = os.path.join(metrics_dir, f".readyz-{os.getpid()}")
    if metrics_dir not in _METRICS_DIR_MARKED:
        try:
            with open(marker, "w"):
                pass
        except OSError as exc:
            return f"{metrics_dir} is not writable: {exc}"
        _METRICS_DIR_MARKED.add(metrics_dir)
    elif not os.path.exists(marker):
        return f"{metrics_dir} was emptied and made again since this process started (another server?)"
    return None


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database answers, Redis answers (services mode; scale-out: every master of the
    cluster, whose nodes it lists to local callers), interest models are loaded. ``mode`` names the mode.

    200 ``{"status": "ok", ...}`` or 503 ``{"status": "degraded", ...}`` with each check's detail.
    Without a loaded model the site still answers (the prior), but it is not at full quality.
    """
    from django.conf import settings

    from inference.api import serving_status

    checks: dict[str, object] = {}
    healthy = True
    problem = _database_check()
    checks["database"] = {"ok": problem is None, "error": problem}
    healthy &= problem is None
    if settings.REDIS_URL:
        problem, nodes, offset = _redis_check()
        redis_check: dict[str, object] = {"ok": problem is None, "error": problem, "clock_offset_ms": offset}
        if settings.REDIS_CLUSTER:
            # node addresses only to whom the metrics are (local, or the metrics token): not for everyone
            redis_check["nodes"] = (
                nodes if _metrics_allowed(request) else {"masters": sum(n["role"] == "master" for n in nodes)}
            )
        checks["redis"] = redis_check
        healthy &= problem is None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        problem = _metrics_dir_check()
        checks["metrics"] = {"ok": problem is None, "error": problem}
        healthy &= problem is None
    status = serving_status()
    models_ok = status.started and bool(status.loaded) and not status.load_errors
    checks["models"] = {
        "ok": models_ok,
        "loaded": status.loaded,
        # which models failed to load, not why (the log has the why)
        "load_errors": {name: "load failed" for name in status.load_errors},
        "breakers": status.breakers,
        "registry_error": "registry unavailable" if status.registry_error else None,
    }
    healthy &= models_ok
    return JsonResponse(
        {"status": "ok" if healthy else "degraded", "mode": settings.ADSITE_MODE, "checks": checks},
        status=200 if healthy else 503,
    )


def _metrics_allowed(request: HttpRequest) -> bool:
    """``METRICS_ACCESS``: ``local`` (default: only from this host), ``token`` (``Authorization: Bearer
    <METRICS_TOKEN>``, from anywhere; local requests too), or ``public``. The series name campaigns,
    budgets and traffic: not for everyone."""
    import hmac

    from django.conf import settings

    access = getattr(settings, "METRICS_ACCESS", "local")
    if access == "public":
        return True
    token = getattr(settings, "METRICS_TOKEN", "") or ""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    return request.META.get("REMOTE_ADDR", "") in ("127.0.0.1", "::1")


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics; aggregated over all web workers when PROMETHEUS_MULTIPROC_DIR is set.
    Answered only as ``METRICS_ACCESS`` allows (403 otherwise)."""

    if not _metrics_allowed(request):
        return JsonResponse({"error": "forbidden", "detail": "metrics are not public (METRICS_ACCESS)"}, status=403)

    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from adsite.ops.metrics import metrics_registry

    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)

"""Reads behind the dashboard pages. Every read is bounded (a limit, or a time window on an index)
and goes through the apps' public faces (``tracking.api``, ``inference.api``, the ads selectors); the
views only render what these return.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from adsite.dashboard import series
from adsite.dashboard.models import AuditEntry, MetricSnapshot, TrafficMinute

WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
CHART_POINTS = 60
MAX_SOURCES = 8
QUANTILES = (0.5, 0.95, 0.99)
BREAKER_NAMES = {0: "closed", 1: "half_open", 2: "open"}


# --- overview -------------------------------------------------------------------------------------


def _snapshots_in(start: datetime, end: datetime) -> dict[str, list[tuple[datetime, dict[str, float]]]]:
    """Per source, up to CHART_POINTS+1 evenly spread snapshots in the window (two queries)."""
    index = list(
        MetricSnapshot.objects.filter(at__gte=start, at__lte=end)
        .order_by("at")
        .values_list("id", "at", "source")[:20_000]
    )
    by_source: dict[str, list[tuple[int, datetime]]] = {}
    for pk, at, source in index:
        by_source.setdefault(source, []).append((pk, at))
    latest_sources = sorted(by_source, key=lambda s: by_source[s][-1][1], reverse=True)[:MAX_SOURCES]
    chosen: dict[int, tuple[str, datetime]] = {}
    for source in latest_sources:
        rows = by_source[source]
        step = max(1, len(rows) // CHART_POINTS)
        picks = rows[::step]
        if picks[-1] != rows[-1]:
            picks.append(rows[-1])
        for pk, at in picks:
            chosen[pk] = (source, at)
    values = dict(MetricSnapshot.objects.filter(id__in=list(chosen)).values_list("id", "values"))
    out: dict[str, list[tuple[datetime, dict[str, float]]]] = {}
    for pk, (source, at) in sorted(chosen.items(), key=lambda item: item[1][1]):
        out.setdefault(source, []).append((at, values.get(pk) or {}))
    return out


def _rate_series(
    points: dict[str, list[tuple[datetime, dict[str, float]]]], start: datetime, end: datetime, pick: Any
) -> list[dict[str, Any]]:
    """Per chart bucket, sum over sources of pick(deltas)/seconds between consecutive snapshots."""
    width = (end - start) / CHART_POINTS
    buckets: list[float] = [0.0] * CHART_POINTS
    seen: list[bool] = [False] * CHART_POINTS
    for rows in points.values():
        for (a_at, a), (b_at, b) in zip(rows, rows[1:], strict=False):
            seconds = (b_at - a_at).total_seconds()
            if seconds <= 0:
                continue
            slot = min(CHART_POINTS - 1, int((b_at - start) / width))
            buckets[slot] += pick(series.counter_deltas(a, b)) / seconds
            seen[slot] = True
    return [
        {"t": (start + width * (i + 1)).isoformat(), "v": round(v, 3) if seen[i] else None}
        for i, v in enumerate(buckets)
    ]


def _served(deltas: dict[str, float]) -> float:
    return sum(series.series_by_label(deltas, "inference_served_total", "served_by").values())


def _http_requests(deltas: dict[str, float]) -> float:
    """HTTP requests answered (every route and status: ``adsite.ops.middleware``)."""
    return sum(series.series_by_label(deltas, "http_requests_total", "route").values())


def _requests_by_route(deltas: dict[str, float], seconds: float, limit: int = 8) -> list[dict[str, Any]]:
    routes = series.series_by_label(deltas, "http_requests_total", "route")
    errors = series.series_by_label(deltas, "http_requests_total", "route", status="5xx")
    busiest = sorted((r for r in routes if routes[r] > 0), key=lambda r: -routes[r])[:limit]
    rows = []
    for route in busiest:
        # server-side latency (``http_request_seconds``); None for windows recorded before it existed
        latency = series.histogram_quantiles(deltas, "http_request_seconds", (0.5, 0.99), route=route)
        rows.append(
            {
                "route": route,
                "count": int(routes[route]),
                "per_s": round(routes[route] / seconds, 3) if seconds > 0 else None,
                "errors_5xx": int(errors.get(route, 0)),
                **{
                    f"p{int(q * 100)}_ms": round(v * 1000, 2) if v is not None else None
                    for q, v in latency.items()
                },
            }
        )
    return rows


def _decisions(deltas: dict[str, float]) -> float:
    return sum(v for k, v in deltas.items() if series.key_parse(k)[0] == "ads_decisions_total")


def _impressions_served(deltas: dict[str, float]) -> float:
    """Placements filled with a campaign's creative (the site's built-in house ad is not counted)."""
    served = series.series_by_label(deltas, "ads_impressions_served_total", "tier")
    return sum(v for tier, v in served.items() if tier != "builtin")


def _has_impressions(deltas: dict[str, float]) -> bool:
    return any(series.key_parse(k)[0] == "ads_impressions_served_total" for k in deltas)


def _spend_rows(spend: dict[str, float], budget: dict[str, float], limit: int = 10) -> list[dict[str, Any]]:
    """The campaigns that spent, most first, named (one query); spend and budget are running totals."""
    spent = sorted((c for c in spend if spend[c] > 0), key=lambda c: -spend[c])[:limit]
    if not spent:
        return []
    from adsite.ads import selectors as ads_selectors

    names = ads_selectors.campaign_names()
    return [
        {
            "campaign": names.get(int(c), c) if c.isdigit() else c,
            "spend": round(spend[c], 2),
            "budget": round(budget[c], 2) if c in budget else None,
        }
        for c in spent
    ]


def _received(deltas: dict[str, float]) -> float:
    return deltas.get("ledger:received", 0.0)


def _latency_table(deltas: dict[str, float], name: str, label: str, **where: str) -> list[dict[str, Any]]:
    rows = []
    for value in series.histogram_label_values(deltas, name, label, **where):
        q = series.histogram_quantiles(deltas, name, QUANTILES, **{label: value, **where})
        count = sum(
            v
            for k, v in deltas.items()
            if series.key_parse(k)[0] == f"{name}_count"
            and series.key_parse(k)[1].get(label) == value
            and all(series.key_parse(k)[1].get(a) == b for a, b in where.items())
        )
        rows.append(
            {
                label: value,
                "count": int(count),
                **{
                    f"p{int(qq * 100)}_ms": (round(v * 1000, 3) if v is not None else None)
                    for qq, v in q.items()
                },
            }
        )
    return rows


def _traffic(start: datetime, end: datetime) -> dict[str, Any]:
    rows = list(
        TrafficMinute.objects.filter(minute__gte=start, minute__lte=end)
        .values("metric", "label")
        .annotate(n=Sum("count"))
        .order_by("metric", "label")
    )
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        totals.setdefault(row["metric"], {})[row["label"]] = int(row["n"] or 0)
    return totals


def traffic_series(
    *, start: datetime, end: datetime, metric: str, points: int = CHART_POINTS
) -> dict[str, Any]:
    """Counts of ``metric`` by label in ``points`` buckets of the window (one grouped query)."""
    rows = (
        TrafficMinute.objects.filter(metric=metric, minute__gte=start, minute__lte=end)
        .values_list("minute", "label")
        .annotate(n=Sum("count"))
        .order_by("minute")
    )
    width = (end - start) / points
    labels: dict[str, list[int]] = {}
    for minute, label, n in rows:
        slot = min(points - 1, max(0, int((minute - start) / width)))
        labels.setdefault(label, [0] * points)[slot] += int(n or 0)
    return {"t": [(start + width * (i + 1)).isoformat() for i in range(points)], "series": labels}


@dataclass(frozen=True, slots=True)
class WindowDeltas:
    """What the snapshots of one window say: per-source points, the summed counter increases over the
    window, the seconds they cover and the latest snapshot (at, values)."""

    start: datetime
    points: dict[str, list[tuple[datetime, dict[str, float]]]]
    deltas: dict[str, float]
    seconds: float
    latest: tuple[datetime, dict[str, float]] | None


def window_deltas(*, window: str = "hour", now: datetime | None = None) -> WindowDeltas:
    """Counter increases over the last hour or day from the snapshots (two queries)."""
    now = now or timezone.now()
    start = now - WINDOWS.get(window, WINDOWS["hour"])
    points = _snapshots_in(start, now)
    deltas = series.deltas_sum(
        series.counter_deltas(rows[0][1], rows[-1][1]) for rows in points.values() if rows
    )
    seconds = max(
        (
            max((rows[-1][0] - rows[0][0]).total_seconds() for rows in points.values() if rows)
            if points
            else 0.0
        ),
        0.0,
    )
    latest = max((rows[-1] for rows in points.values() if rows), key=lambda r: r[0], default=None)
    return WindowDeltas(start=start, points=points, deltas=deltas, seconds=seconds, latest=latest)


def overview_get(*, window: str = "hour", now: datetime | None = None) -> dict[str, Any]:
    """The overview's figures for the last hour or day, JSON-ready (see the module docstring of rollup)."""
    now = now or timezone.now()
    measured = window_deltas(window=window, now=now)
    start, points, deltas = measured.start, measured.points, measured.deltas
    seconds, latest = measured.seconds, measured.latest
    served = series.series_by_label(deltas, "inference_served_total", "served_by")
    predictions = sum(served.values())
    decisions = _decisions(deltas)
    fallbacks = series.series_by_label(deltas, "inference_fallbacks_total", "reason")
    breakers = {}
    if latest is not None:
        for model, value in series.series_by_label(latest[1], "inference_breaker_state", "model").items():
            breakers[model] = BREAKER_NAMES.get(int(value), str(value))
    traffic = _traffic(start, now)
    events = traffic.get("events", {})
    bots = traffic.get("bots", {})
    quarantined = traffic.get("quarantined", {})
    people = sum(events.values())
    impressions = events.get("ad_impression", 0)
    clicks = events.get("ad_click", 0)
    spend = series.series_by_label(latest[1], "ads_spend_total", "campaign") if latest else {}
    budget = series.series_by_label(latest[1], "ads_budget", "campaign") if latest else {}

    def per_s(value: float) -> float | None:
        return round(value / seconds, 3) if seconds > 0 else None

    return {
        "window": window if window in WINDOWS else "hour",
        "now": now.isoformat(),
        "measured_seconds": round(seconds, 1),
        "snapshot_at": latest[0].isoformat() if latest else None,
        # true HTTP requests (every route), not predictions + decisions; None before the first
        # snapshots that hold the counter
        "requests_per_s": (
            per_s(_http_requests(deltas))
            if any(k.startswith("http_requests_total{") for k in deltas)
            else None
        ),
        "requests_by_route": _requests_by_route(deltas, seconds),
        "predictions_per_s": per_s(predictions),
        "decisions_per_s": per_s(decisions),
        "events_per_s": per_s(_received(deltas)),
        "served_by": {k: int(v) for k, v in sorted(served.items()) if v > 0},
        "fallbacks": [
            {"reason": k, "count": int(v), "rate": f"{100 * v / predictions:.1f}%" if predictions else None}
            for k, v in sorted(fallbacks.items())
            if v > 0
        ],
        "prediction_latency": _latency_table(deltas, "inference_predict_seconds", "model", stage="total"),
        "model_latency": _latency_table(deltas, "inference_predict_seconds", "model", stage="model"),
        "decision_latency": _latency_table(deltas, "ads_decision_seconds", "placement"),
        "breakers": breakers,
        "events_by_type": events,
        "bots_by_type": bots,
        "bot_share": round(sum(bots.values()) / (people + sum(bots.values())), 4) if people or bots else None,
        "quarantined_by_reason": quarantined,
        "impressions_served": int(_impressions_served(deltas) if _has_impressions(deltas) else decisions),
        "impressions_viewable": impressions,
        "clicks": clicks,
        "ctr": f"{100 * clicks / impressions:.2f}%" if impressions else None,
        "spend_vs_budget": _spend_rows(spend, budget),
        "chart": {
            "requests": _rate_series(points, start, now, _http_requests),
            "events": _rate_series(points, start, now, _received),
        },
    }


# --- models ---------------------------------------------------------------------------------------

BASELINES = ("popularity", "frequency", "recent", "decayed")
METRIC_NAMES = ("ndcg@5", "recall@3", "auc")
# template-friendly keys (Django template variables cannot contain "@")
METRIC_KEYS = {"ndcg@5": "ndcg5", "recall@3": "recall3", "auc": "auc"}


@dataclass(frozen=True, slots=True)
class ModelRow:
    version: str
    algorithm: str
    status: str
    created_at: datetime
    activated_at: datetime | None
    data_from: datetime | None
    data_to: datetime | None
    training_seconds: float
    model_metrics: dict[str, float | None]
    best_baseline: str | None
    best_baseline_metrics: dict[str, float | None]
    test_users: int | None
    decision: str


def _metrics_of(result: dict[str, Any] | None) -> dict[str, float | None]:
    result = result or {}
    out: dict[str, float | None] = {}
    for name in METRIC_NAMES:
        value = result.get(name)
        out[METRIC_KEYS[name]] = round(float(value), 4) if isinstance(value, int | float) else None
    return out


def model_row(row: Any) -> ModelRow:
    """A registry version (``inference.api.ModelVersionInfo``) as the models table shows it."""
    metrics = row.metrics or {}
    results = metrics.get("results") or {}
    baselines = {name: _metrics_of(results.get(name)) for name in BASELINES if name in results}
    best = max(baselines, key=lambda n: baselines[n]["ndcg5"] or -1.0, default=None)
    return ModelRow(
        version=row.version,
        algorithm=row.algorithm,
        status=row.status,
        created_at=row.created_at,
        activated_at=row.activated_at,
        data_from=row.data_from,
        data_to=row.data_to,
        training_seconds=row.training_seconds,
        model_metrics=_metrics_of(results.get("model")),
        best_baseline=best,
        best_baseline_metrics=baselines.get(best, {}) if best else {},
        test_users=(metrics.get("slice") or {}).get("test_users"),
        decision=str(metrics.get("decision") or ""),
    )


def shadow_results(measured: WindowDeltas) -> list[dict[str, Any]]:
    """Per shadow version (and the algorithm whose answers it was compared with) in the window:
    requests scored, mean top-k agreement, top-1 match rate, latency p50/p99, skips and errors."""
    d = measured.deltas
    scored = {
        (labels["version"], labels["compared_with"]): value
        for key, value in d.items()
        for name, labels in [series.key_parse(key)]
        if name == "inference_shadow_agreement_count" and "version" in labels and "compared_with" in labels
    }
    versions = sorted(
        {v for v, _ in scored}
        | {
            series.key_parse(k)[1].get("version", "")
            for k, value in d.items()
            if value > 0
            and series.key_parse(k)[0] in ("inference_shadow_skipped_total", "inference_shadow_errors_total")
        }
        - {""}
    )
    rows = []
    for version in versions:
        latency = series.histogram_quantiles(d, "inference_shadow_seconds", (0.5, 0.99), version=version)
        skipped = series.series_by_label(d, "inference_shadow_skipped_total", "reason", version=version)
        errors = series.series_by_label(d, "inference_shadow_errors_total", "kind", version=version)
        compared = sorted(c for v, c in scored if v == version) or [""]
        for against in compared:
            n = scored.get((version, against), 0.0)
            total = d.get(series_key("inference_shadow_agreement_sum", version, against), 0.0)
            top1 = d.get(series_key("inference_shadow_top1_match_total", version, against), 0.0)
            rows.append(
                {
                    "version": version,
                    "compared_with": against,
                    "scored": int(n),
                    "agreement": round(total / n, 3) if n else None,
                    "top1": f"{100 * top1 / n:.1f}%" if n else None,
                    "p50_ms": round(latency[0.5] * 1000, 3) if latency[0.5] is not None else None,
                    "p99_ms": round(latency[0.99] * 1000, 3) if latency[0.99] is not None else None,
                    "skipped": {k: int(v) for k, v in sorted(skipped.items()) if v > 0},
                    "errors": {k: int(v) for k, v in sorted(errors.items()) if v > 0},
                }
            )
    return rows


def series_key(name: str, version: str, compared_with: str) -> str:
    return f"{name}{{compared_with={compared_with},version={version}}}"


def models_page(*, limit: int = 50, now: datetime | None = None) -> dict[str, Any]:
    """The registry table (newest first), recent training runs, live serving figures and shadow mode
    (its config and, from the rollups, its agreement and latency over the last hour and day)."""
    from inference import api as inference_api

    now = now or timezone.now()
    rows = [model_row(row) for row in inference_api.model_versions(limit=limit)]
    runs = inference_api.training_runs_recent(limit=5)
    status = inference_api.serving_status(start=False)
    active = inference_api.active_model_versions()
    hour = window_deltas(window="hour", now=now)
    day = window_deltas(window="day", now=now)
    # model call time per algorithm, answers per algorithm and the latest breaker states (last hour)
    latency = {
        row["model"]: row
        for row in _latency_table(hour.deltas, "inference_predict_seconds", "model", stage="model")
    }
    served = series.series_by_label(hour.deltas, "inference_served_total", "served_by")
    answers = sum(served.values())
    breakers = (
        series.series_by_label(hour.latest[1], "inference_breaker_state", "model") if hour.latest else {}
    )
    algorithms = []
    for name in ("neural", "gbdt"):
        row = latency.get(name, {})
        state = breakers.get(name)
        algorithms.append(
            {
                "name": name,
                "active": active.get(name, ""),
                "loaded": status.loaded.get(name, ""),
                "error": status.load_errors.get(name, ""),
                "breaker": status.breakers.get(name)
                or (BREAKER_NAMES.get(int(state), "") if state is not None else ""),
                "p50": row.get("p50_ms"),
                "p99": row.get("p99_ms"),
                "share": f"{100 * served.get(name, 0) / answers:.1f}%" if answers else None,
            }
        )
    setting = inference_api.shadow_setting_get()
    shadow = {
        "setting": setting,
        "percent": round(100 * setting.sample_rate, 2) if setting else None,
        "here": status.shadow,
        "results": [{"window": "last hour", **r} for r in shadow_results(hour)]
        + [{"window": "last day", **r} for r in shadow_results(day)],
        "candidates": [r for r in rows if r.status != "active"],
    }
    return {"models": rows, "runs": runs, "algorithms": algorithms, "shadow": shadow}


def training_run_get(*, run_id: int | None = None) -> dict[str, Any] | None:
    """A training run's progress (the latest when ``run_id`` is None), JSON-ready."""
    from inference import api as inference_api

    run = inference_api.training_run(run_id=run_id)
    if run is None:
        return None
    return {
        "id": run.id,
        "status": run.status,
        "stage": run.stage,
        "percent": run.percent,
        "message": run.message,
        "outcome": run.outcome,
        "error": run.error[-500:],
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def models_compare(*, a: str, b: str) -> dict[str, Any] | None:
    """Two versions side by side: metrics beside the baselines of each version's own slice."""
    from inference import api as inference_api

    rows = {row.version: row for row in inference_api.model_versions(versions=[a, b], limit=2)}
    if a not in rows or b not in rows:
        return None
    out: dict[str, Any] = {}
    for key, version in (("a", a), ("b", b)):
        row = rows[version]
        results = (row.metrics or {}).get("results") or {}
        out[key] = {
            "row": model_row(row),
            "results": {
                name: _metrics_of(results.get(name)) for name in ("model", *BASELINES) if name in results
            },
        }
    out["chart"] = {
        "labels": ["NDCG@5", "Recall@3", "AUC"],
        "datasets": [
            {"label": version, "data": [out[key]["row"].model_metrics.get(k) for k in METRIC_KEYS.values()]}
            for key, version in (("a", a), ("b", b))
        ],
        "options": {"scales": {"y": {"beginAtZero": True, "max": 1}}},
    }
    out["per_category"] = per_category_compare(
        a=(a, ((rows[a].metrics or {}).get("results") or {}).get("model") or {}),
        b=(b, ((rows[b].metrics or {}).get("results") or {}).get("model") or {}),
    )
    return out


def per_category_compare(
    *, a: tuple[str, dict[str, Any]], b: tuple[str, dict[str, Any]], limit: int = 20
) -> dict[str, Any]:
    """Per-category hit@3 and AUC of two versions, as stored with each at training time (each on its
    own evaluation slice), for the categories most of A's (then B's) test users engaged with."""
    name_a, fa = a[0], a[1].get("per_category") or {}
    name_b, fb = b[0], b[1].get("per_category") or {}
    order = sorted(fa, key=lambda c: -fa[c].get("users", 0))
    order += sorted((c for c in fb if c not in fa), key=lambda c: -fb[c].get("users", 0))
    categories = order[:limit]
    rows = [
        {
            "category": c,
            "users_a": (fa.get(c) or {}).get("users"),
            "users_b": (fb.get(c) or {}).get("users"),
            "hit_a": (fa.get(c) or {}).get("hit@3"),
            "hit_b": (fb.get(c) or {}).get("hit@3"),
            "auc_a": (fa.get(c) or {}).get("auc"),
            "auc_b": (fb.get(c) or {}).get("auc"),
        }
        for c in categories
    ]
    return {
        "missing": [version for version, f in ((name_a, fa), (name_b, fb)) if not f],
        "rows": rows,
        "chart": {
            "labels": categories,
            "datasets": [
                {"label": f"{name_a} hit@3", "data": [r["hit_a"] for r in rows]},
                {"label": f"{name_b} hit@3", "data": [r["hit_b"] for r in rows]},
            ],
            "options": {"indexAxis": "y", "scales": {"x": {"beginAtZero": True, "max": 1}}},
        }
        if rows
        else None,
    }


# --- visitors -------------------------------------------------------------------------------------


def visitor_get(*, user_id: str, events: int = 50) -> dict[str, Any]:
    """Interest profile (feature store), predicted interests (what serving answers now), recent events."""
    from inference import api as inference_api
    from tracking import api as tracking_api

    profile_error = ""
    try:
        profile = inference_api.user_interest_profile(user_id)
    except Exception as exc:  # the store being down must not take the page with it
        profile, profile_error = None, f"{type(exc).__name__}: {exc}"
    interests = inference_api.predict_interests(user_id, top=10)
    recent = tracking_api.user_events_recent(user_id=user_id, limit=events)
    rows: list[dict[str, Any]] = []
    chart: dict[str, Any] = {"labels": [], "datasets": []}
    if profile is not None:
        counts = dict(profile.counts)
        shares = {label: dict(values) for label, values in profile.decayed_share.items()}
        top = [c for c, _ in (profile.decayed_share.get(profile.half_lives[-1]) or profile.counts)][:15]
        top += [c for c, _ in profile.counts if c not in top][: max(0, 15 - len(top))]
        rows = [
            {
                "category": c,
                "shares": [shares[label].get(c, 0.0) for label in profile.half_lives],
                "count": counts.get(c, 0),
            }
            for c in top
        ]
        chart = {
            "labels": top,
            "datasets": [
                {
                    "label": f"share, half-life {label}",
                    "data": [round(shares[label].get(c, 0.0), 4) for c in top],
                }
                for label in profile.half_lives
            ],
        }
    interests_chart = {
        "labels": [c for c, _ in interests.scores],
        "datasets": [
            {
                "label": f"{interests.served_by} {interests.model_version}",
                "data": [round(v, 4) for _, v in interests.scores],
            }
        ],
        "options": {"indexAxis": "y"},
    }
    return {
        "profile_rows": rows,
        "profile_chart": chart,
        "interests_chart": interests_chart,
        "user_id": user_id,
        "profile": profile,
        "profile_error": profile_error,
        "interests": interests,
        "events": recent,
        "decisions": visitor_decisions(user_id=user_id),
    }


def visitor_decisions(*, user_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The visitor's kept ad decisions (ads keeps a sample), one row per filled placement, with the
    reason given, how the interests were answered, what was filtered and the top candidates."""
    from adsite.ads import selectors as ads_selectors

    rows: list[dict[str, Any]] = []
    for kept in ads_selectors.decision_explanations_recent(user_id=user_id, limit=limit):
        explanation = kept["explanation"] or {}
        candidates = explanation.get("candidates") or []
        advertisers = {c.get("creative_id"): c.get("advertiser", "") for c in candidates}
        filtered: dict[str, int] = {}
        for item in explanation.get("filtered") or []:
            filtered[item.get("reason", "")] = filtered.get(item.get("reason", ""), 0) + 1
        interests = explanation.get("interests") or {}
        for chosen in explanation.get("chosen") or []:
            rows.append(
                {
                    "at": kept["created_at"],
                    "decision_id": kept["decision_id"],
                    "placement": chosen.get("placement", ""),
                    "creative": chosen.get("creative_id") or "house ad",
                    "advertiser": advertisers.get(chosen.get("creative_id"), ""),
                    "explanation": chosen.get("reason", ""),
                    "served_by": interests.get("served_by", ""),
                    "fallback_reason": interests.get("fallback_reason") or "",
                    "filtered": sorted(filtered.items()),
                    "candidates": candidates[:5],
                }
            )
    return rows


# --- data quality ---------------------------------------------------------------------------------


def quality_page(
    *, reason: str | None = None, before_id: int | None = None, limit: int = 50, now: datetime | None = None
) -> dict[str, Any]:
    from tracking import api as tracking_api

    now = now or timezone.now()
    start = now - WINDOWS["day"]
    traffic = _traffic(start, now)
    events, bots = traffic.get("events", {}), traffic.get("bots", {})
    total = sum(events.values()) + sum(bots.values())
    rows = tracking_api.quarantined_list(reason=reason, before_id=before_id, limit=limit)
    return {
        "reasons": tracking_api.quarantine_reasons(),
        # events stored but not yet in the online features (the feature store was unreachable)
        "feature_backlog": tracking_api.feature_backlog_size(),
        "reasons_day": traffic.get("quarantined", {}),
        "rows": rows,
        "next_before": rows[-1].id if len(rows) == limit else None,
        "bot_share": round(sum(bots.values()) / total, 4) if total else None,
        "events_day": events,
        "bots_day": bots,
        "events_series": traffic_series(start=start, end=now, metric="events", points=24),
        "quarantine_series": traffic_series(start=start, end=now, metric="quarantined", points=24),
    }


# --- audit ----------------------------------------------------------------------------------------


def audit_list(*, limit: int = 100, before_id: int | None = None) -> list[AuditEntry]:
    query = AuditEntry.objects.all()
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return list(query.order_by("-id")[:limit])


# --- ads ------------------------------------------------------------------------------------------

ADS_SERIES = ("served", "viewable", "clicks", "spend")
_ADS_KEYS = {
    "ads_campaign_served": "served",
    "ads_campaign_viewable": "viewable",
    "ads_campaign_clicks": "clicks",
    "ads_spend_total": "spend",
}


def _ads_values(values: dict[str, float]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for key, value in values.items():
        name, labels = series.key_parse(key)
        if name in _ADS_KEYS and "campaign" in labels:
            out[(_ADS_KEYS[name], labels["campaign"])] = value
    return out


def ads_delivery_series(
    *, window: str = "hour", campaign_id: int | None = None, now: datetime | None = None, points: int = 30
) -> dict[str, Any]:
    """Served and viewable impressions, clicks and spend per time bucket (all campaigns summed, or one).

    The ads ledger's counters are global, so consecutive snapshots are differenced in time order
    whichever process took them (two queries: the window's snapshot index, then the picked rows).
    """
    now = now or timezone.now()
    start = now - WINDOWS.get(window, WINDOWS["hour"])
    index = list(
        MetricSnapshot.objects.filter(at__gte=start, at__lte=now)
        .order_by("at", "id")
        .values_list("id", "at")[:20_000]
    )
    step = max(1, len(index) // (points * 2))
    picks = index[::step]
    if index and picks[-1] != index[-1]:
        picks.append(index[-1])
    values = dict(MetricSnapshot.objects.filter(id__in=[pk for pk, _ in picks]).values_list("id", "values"))
    width = (now - start) / points
    out: dict[str, list[float | None]] = {name: [None] * points for name in ADS_SERIES}
    wanted = str(campaign_id) if campaign_id is not None else None
    previous: dict[tuple[str, str], float] | None = None
    for pk, at in picks:
        current = _ads_values(values.get(pk) or {})
        if previous is not None and current:
            slot = min(points - 1, max(0, int((at - start) / width)))
            for (name, campaign), value in current.items():
                if wanted is not None and campaign != wanted:
                    continue
                before = previous.get((name, campaign), 0.0)
                delta = value - before if value >= before else value  # a cleared ledger starts again
                out[name][slot] = (out[name][slot] or 0.0) + delta
        if current:
            previous = current
    return {
        "t": [(start + width * (i + 1)).isoformat() for i in range(points)],
        "series": {
            name: [round(v, 4) if v is not None else None for v in values_] for name, values_ in out.items()
        },
        "snapshots": len(picks),
    }


def ads_sat_out(*, window: str = "hour", now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Per campaign id, how many decisions it sat out in the window: capped, paced, out of budget
    (``ads_campaign_filtered_total``, a per-process counter: differenced per source, then summed)."""
    now = now or timezone.now()
    start = now - WINDOWS.get(window, WINDOWS["hour"])
    points = _snapshots_in(start, now)
    deltas = series.deltas_sum(
        series.counter_deltas(rows[0][1], rows[-1][1]) for rows in points.values() if rows
    )
    out: dict[str, dict[str, int]] = {}
    for key, value in deltas.items():
        name, labels = series.key_parse(key)
        if name == "ads_campaign_filtered_total" and value > 0:
            out.setdefault(labels.get("campaign", ""), {})[labels.get("reason", "")] = int(value)
    return out


def _pct(part: float, whole: float, digits: int = 2) -> str | None:
    return f"{100 * part / whole:.{digits}f}%" if whole else None


def ads_page(*, window: str = "hour", now: datetime | None = None) -> dict[str, Any]:
    """Advertisers with their campaigns (ledger totals, pacing, caps hit in the window) and the
    combined delivery chart."""
    from adsite.ads import selectors as ads_selectors

    campaigns = ads_selectors.campaign_delivery_list()
    sat_out = ads_sat_out(window=window, now=now)
    rows = []
    for c in campaigns:
        hits = sat_out.get(str(c.id), {})
        rows.append(
            {
                "c": c,
                "ctr": _pct(c.clicks, c.served),
                "used": _pct(c.spend_total, c.total_budget, 1),
                "capped": hits.get("capped", 0),
                "paced": hits.get("paced", 0),
                "out_of_budget": hits.get("out_of_budget", 0),
            }
        )
    advertisers: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        advertisers.setdefault(row["c"].advertiser, []).append(row)
    totals = {
        "served": sum(c.served for c in campaigns),
        "viewable": sum(c.viewable for c in campaigns),
        "clicks": sum(c.clicks for c in campaigns),
        "spend": round(sum(c.spend_total for c in campaigns), 2),
        "budget": round(sum(c.total_budget for c in campaigns if c.tier != "house"), 2),
        "active": sum(1 for c in campaigns if c.status == "active"),
        "campaigns": len(campaigns),
    }
    totals["ctr"] = f"{100 * totals['clicks'] / totals['served']:.2f}%" if totals["served"] else None
    return {
        "advertisers": sorted(advertisers.items()),
        "counters_unavailable": any(not c.counters_available for c in campaigns),
        "totals": totals,
        "delivery": ads_delivery_series(window=window, now=now),
    }


def ads_campaign_page(
    *, campaign_id: int, window: str = "hour", now: datetime | None = None
) -> dict[str, Any] | None:
    """One campaign: its creatives (with previews), delivery chart and the caps it hit."""
    from adsite.ads import selectors as ads_selectors

    found = ads_selectors.campaign_delivery_list(campaign_id=campaign_id)
    if not found:
        return None
    hits = ads_sat_out(window=window, now=now).get(str(campaign_id), {})
    campaign = found[0]
    return {
        "campaign": campaign,
        "counters_unavailable": not campaign.counters_available,
        "ctr": _pct(campaign.clicks, campaign.served),
        "used": _pct(campaign.spend_total, campaign.total_budget, 1),
        "today_used": _pct(campaign.spend_today, campaign.daily_budget, 1),
        "creatives": [{"cr": cr, "ctr": _pct(cr.clicks, cr.served)} for cr in campaign.creatives],
        "sat_out": hits,
        "delivery": ads_delivery_series(window=window, campaign_id=campaign_id, now=now),
    }

"""Reads behind the models pages: the registry's versions beside the baselines, training runs,
shadow-mode agreement, and the comparison of two versions (through ``inference.api``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from django.utils import timezone

from adsite.dashboard import series
from adsite.dashboard.selectors.windows import (
    BREAKER_NAMES,
    WindowDeltas,
    latency_table,
    window_deltas,
)
from inference.api import ModelVersionInfo

BASELINES = ("popularity", "frequency", "recent", "decayed")
# the baselines as servable rankers (rows of the models page after neural and gbdt when not active)
RANKERS = ("decayed", "frequency", "recent", "popularity")

METRIC_NAMES = ("ndcg@5", "recall@3", "auc")
# template-friendly keys (Django template variables cannot contain "@")

METRIC_KEYS = {"ndcg@5": "ndcg5", "recall@3": "recall3", "auc": "auc"}


@dataclass(frozen=True, slots=True)
class ModelRow(ModelVersionInfo):
    """A registry version with what the models table derives from its metrics."""

    model_metrics: dict[str, float | None]
    best_baseline: str | None
    best_baseline_metrics: dict[str, float | None]
    test_users: int | None
    decision: str
    # where it was trained (the registry's engine facts), e.g. "dask: 2 workers, 8 partitions; ..."
    engine: str = ""


def _engine_summary(algorithm: str, facts: dict[str, Any] | None) -> str:
    """One line from a version's engine facts (``metrics["engine"]``); "" for versions without them."""
    if not facts:
        return ""
    parts = [str(facts.get("engine") or "local")]
    if facts.get("engine") == "dask":
        parts[0] += f": {facts.get('workers')} workers, {facts.get('partitions')} partitions"
    built = facts.get("training_set") or {}
    if built.get("rows") is not None:
        parts.append(f"training set {built['rows']:,} rows in {float(built.get('seconds') or 0):.1f} s")
    own = facts.get(algorithm) or {}
    if own.get("engine"):
        size = own.get("world_size") or own.get("workers")
        parts.append(
            f"{own['engine']}" + (f" x{size}" if size else "") + f" {float(own.get('seconds') or 0):.1f} s"
        )
    return "; ".join(parts)


def _metrics_of(result: dict[str, Any] | None) -> dict[str, float | None]:
    result = result or {}
    out: dict[str, float | None] = {}
    for name in METRIC_NAMES:
        value = result.get(name)
        out[METRIC_KEYS[name]] = round(float(value), 4) if isinstance(value, int | float) else None
    return out


def model_row(row: ModelVersionInfo) -> ModelRow:
    """A registry version (``inference.api.ModelVersionInfo``) as the models table shows it."""
    metrics = row.metrics or {}
    results = metrics.get("results") or {}
    baselines = {name: _metrics_of(results.get(name)) for name in BASELINES if name in results}
    best = max(baselines, key=lambda n: baselines[n]["ndcg5"] or -1.0, default=None)
    return ModelRow(
        **{f.name: getattr(row, f.name) for f in fields(ModelVersionInfo)},
        model_metrics=_metrics_of(results.get("model")),
        best_baseline=best,
        best_baseline_metrics=baselines.get(best, {}) if best else {},
        test_users=(metrics.get("slice") or {}).get("test_users"),
        decision=str(metrics.get("decision") or ""),
        engine=_engine_summary(row.algorithm, metrics.get("engine")),
    )


def _why(row: ModelRow | None, *, serving: bool) -> str:
    """The models page's reason for a ranker: its training decision, or, for one that no longer serves,
    why it stopped (withdrawn below the best baseline, a blend whose member changed)."""
    if row is None:
        return ""
    if not serving and row.status == "retired" and row.stopped_because:
        return f"stopped serving: {row.stopped_because}"
    return row.decision


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
    order = inference_api.active_rankers()  # the chain's order: best on the validation slice first
    active = {ranker.algorithm: ranker.version for ranker in order}
    scores = {ranker.algorithm: ranker.validation_score for ranker in order}
    hour = window_deltas(window="hour", now=now)
    day = window_deltas(window="day", now=now)
    # model call time per algorithm, answers per algorithm and the latest breaker states (last hour)
    latency = {
        row["model"]: row
        for row in latency_table(hour.deltas, "inference_predict_seconds", "model", stage="model")
    }
    served = series.series_by_label(hour.deltas, "inference_served_total", "served_by")
    answers = sum(served.values())
    breakers = (
        series.series_by_label(hour.latest[1], "inference_breaker_state", "model") if hour.latest else {}
    )
    # why each ranker serves or not: the decision stored with its active version, else with its newest one
    by_version = {r.version: r for r in rows}
    newest: dict[str, ModelRow] = {}
    for r in rows:  # newest first
        newest.setdefault(r.algorithm, r)
    rankers = [name for name in ("blend", *RANKERS) if name in active or name in newest]
    algorithms = []
    # the active rankers in the order the chain tries them, then the algorithms without an active version
    names = [*active, *(name for name in ("neural", "gbdt", *rankers) if name not in active)]
    for name in names:
        row = latency.get(name, {})
        state = breakers.get(name)
        decided = by_version.get(active.get(name, "")) or newest.get(name)
        algorithms.append(
            {
                "name": name,
                "why": _why(decided, serving=name in active),
                "active": active.get(name, ""),
                "order": list(active).index(name) + 1 if name in active else None,
                "score": round(score, 4) if (score := scores.get(name)) is not None else None,
                "loaded": status.loaded.get(name, ""),
                "error": status.load_errors.get(name, ""),
                "breaker": status.breakers.get(name)
                or (BREAKER_NAMES.get(int(state), "") if state is not None else ""),
                "p50": row.get("p50_ms"),
                "p99": row.get("p99_ms"),
                "share": f"{100 * served.get(name, 0) / answers:.1f}%" if answers else None,
                # no "Roll back" button when nothing served before the active version
                "rollback_to": inference_api.model_version_rollback_target(algorithm=name),
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
    # the chain answers with its first active ranker: the best on the validation slice
    first = algorithms[0] if order else None
    serving = {
        "name": first["name"] if first else "prior",
        "why": first["why"] if first else "no ranker is active: the prior answers every request",
        "order": ", ".join(
            f"{r.algorithm} {r.validation_score:.4f}" if r.validation_score is not None else f"{r.algorithm} (not scored)"
            for r in order
        ),
    }
    return {"models": rows, "runs": runs, "algorithms": algorithms, "shadow": shadow, "serving": serving}


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

"""What is served, measured: a split replayed through the product's own path, scored like the offline run.

``serving_evaluate`` takes the events of a clickstream and the function that imports events the way
the site does (tracking's validation, the events table, the online feature store), then:

1. splits them with the protocol of EVALUATION.md and imports the training side only;
2. runs the real training pipeline (``training_run_execute``: the registry, its activation rule, the
   baseline rankers, the artifacts);
3. asks the real predictor of this process (the active versions loaded from the registry, the
   configured online store, the fallback chain and its deadline) for each test user's interests with
   the clock at the case's prediction time (``predict(..., now=...)``: no wall clock, no waiting), or
   ``delay_s`` later (every visitor returning after that long an absence);
4. scores the served top-k with the protocol's metrics, and beside it the *offline* scores of the
   registered versions (the same artifacts, features replayed from the events, no store, no chain)
   and the four baselines, on the same cases.

Reported: served NDCG@5 (with its bootstrap interval) beside offline, its paired difference from the
protocol's best baseline (``served_vs_best_baseline``: the bar of EVALUATION.md, for what is served), by the ranker that actually served
each answer, and by the time since the visitor's last event (``GAP_BUCKETS``), plus the paired
difference between each served answer and the offline score of the ranker that served it (the skew
of the serving path: zero when serving computes what the evaluation measured).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from inference.evaluation.baselines import BASELINES, baseline_scores, category_popularity
from inference.evaluation.metrics import (
    bootstrap_interval,
    ndcg_at_k,
    paired_bootstrap_interval,
    ranking_order,
    recall_at_k,
)
from inference.evaluation.protocol import Split, split_events
from inference.evaluation.runner import split_categories, split_truth
from inference.events import EventRecord

__all__ = ["GAP_BUCKETS", "gap_bucket", "served_matrix", "serving_evaluate"]

HOUR = 3600.0
DAY = 86_400.0
# time since the visitor's last event at the prediction: (label, upper bound in seconds)
GAP_BUCKETS: tuple[tuple[str, float], ...] = (
    ("minutes", HOUR),
    ("hours", DAY),
    ("days", 7 * DAY),
    ("weeks", 30 * DAY),
    ("months", 365 * DAY),
    ("years", math.inf),
)
NOT_SERVED = -1e9

# predict(user_id, now) -> the served answer (``inference.api.Interests``)
Predict = Callable[[str, float], Any]


def gap_bucket(seconds: float) -> str:
    for label, bound in GAP_BUCKETS:
        if seconds < bound:
            return label
    return GAP_BUCKETS[-1][0]


def served_matrix(answers: Sequence[Any], categories: Sequence[str]) -> np.ndarray:
    """Scores[case, category] from served answers: their order kept, every other category below them
    (the ranking then breaks those ties by popularity, as the offline rankers' non-candidates)."""
    index = {c: i for i, c in enumerate(categories)}
    matrix = np.full((len(answers), len(categories)), NOT_SERVED)
    for row, answer in enumerate(answers):
        ranked = [c for c, _ in answer.scores if c in index]
        for position, category in enumerate(ranked):
            matrix[row, index[category]] = float(len(ranked) - position)
    return matrix


def _summary(ndcg: np.ndarray, recall: np.ndarray, *, seed: int) -> dict[str, Any]:
    keep = ~np.isnan(ndcg)
    if not keep.any():
        return {"users": 0}
    lo, hi = bootstrap_interval(ndcg, seed=seed)
    return {
        "users": int(keep.sum()),
        "ndcg@5": round(float(np.nanmean(ndcg)), 4),
        "ndcg@5_ci": [round(lo, 4), round(hi, 4)],
        "recall@3": round(float(np.nanmean(recall)), 4),
    }


def serving_evaluate(
    events: Sequence[EventRecord],
    *,
    import_events: Callable[[Sequence[EventRecord]], Any],
    dataset: str,
    split: str = "time",
    quantile: float = 0.8,
    horizon: int = 10,
    seed: int = 0,
    delays_s: Sequence[float] = (0.0,),
    budget_ms: float | None = None,
    predict: Predict | None = None,
    train: Callable[[], Any] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Import the training side, train through the registry, serve every test case, score it; the
    JSON-ready report. ``predict`` / ``train`` default to the real ones (tests may pass their own)."""
    from inference.registry.selectors import active_model_versions
    from inference.registry.training import training_run_execute

    parts = split_events(events, kind=split, quantile=quantile, horizon=horizon)
    if not parts.cases:
        raise ValueError(f"{dataset}: the {split} split leaves no test users")
    log(f"{dataset}: importing the {len(parts.train):,} events before the cut-off")
    import_events(parts.train)

    log("training through the registry (manage.py train, its defaults)")
    run = (train or (lambda: training_run_execute(algorithm="all", activate="auto")))()
    if getattr(run, "status", "succeeded") != "succeeded":
        raise RuntimeError(f"training failed: {getattr(run, 'message', run)}")
    active = active_model_versions()
    log("serving: " + ", ".join(f"{a} {v.version}" for a, v in active.items()))

    if predict is None:
        predict = _real_predict(budget_ms)
    categories, tiebreak = split_categories(events, parts)
    truth = split_truth(parts, categories)
    report = _scored(parts, categories, tiebreak, truth, active, predict, delay_s=delays_s[0], seed=seed)
    report.update(
        dataset=dataset,
        split=split,
        horizon=horizon,
        training_events=len(parts.train),
        categories=len(categories),
        cutoff_ts=parts.cutoff,
        active={a: v.version for a, v in active.items()},
        decisions=dict(getattr(run, "outcome", {}) or {}),
    )
    later = {}
    for delay in delays_s[1:]:
        log(f"serving again {delay / DAY:g} days after the cut-off")
        later[f"{delay / DAY:g}d"] = _scored(
            parts, categories, tiebreak, truth, active, predict, delay_s=delay, seed=seed
        )
    if later:
        report["later"] = later
    return report


def _scored(
    parts: Split,
    categories: Sequence[str],
    tiebreak: np.ndarray,
    truth: np.ndarray,
    active: Mapping[str, Any],
    predict: Predict,
    *,
    delay_s: float,
    seed: int,
) -> dict[str, Any]:
    from inference.evaluation.models import model_case_scores
    from inference.models import model_load
    from inference.models.prior import prior_train

    answers = [predict(case.user_id, case.prediction_ts + delay_s) for case in parts.cases]

    def metrics_of(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = ranking_order(scores, tiebreak)
        return ndcg_at_k(order, truth, 5), recall_at_k(order, truth, 3)

    served_ndcg, served_recall = metrics_of(served_matrix(answers, categories))

    # offline: the very artifacts serving loaded, features replayed from the events at the same times
    shifted = _shifted(parts, delay_s)
    offline: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for algorithm, version in active.items():
        model = model_load(version.artifact_dir)
        offline[algorithm] = metrics_of(
            _by_name(model_case_scores(model, shifted), model.categories, categories)
        )
    # the prior (the chain's last resort) as serving builds it: the population counts of the store
    prior = prior_train(events=parts.train, categories=categories)
    offline["prior"] = metrics_of(_by_name(model_case_scores(prior, shifted), prior.categories, categories))
    popularity = category_popularity(parts.train)
    baselines = {
        name: metrics_of(baseline_scores(name, parts.cases, categories, popularity)) for name in BASELINES
    }

    served_by = [answer.served_by for answer in answers]
    gaps = np.array([case.prediction_ts + delay_s - case.history[-1].ts for case in parts.cases])
    buckets = np.array([gap_bucket(g) for g in gaps])

    # the paired skew: each served answer against the offline score of the ranker that served it
    counterpart = np.full(len(parts.cases), np.nan)
    for row, name in enumerate(served_by):
        source = offline.get(name)
        if source is not None:
            counterpart[row] = source[0][row]
    paired = ~np.isnan(counterpart) & ~np.isnan(served_ndcg)
    lo, hi = paired_bootstrap_interval(served_ndcg[paired], counterpart[paired], seed=seed)
    # what the visitor gets against the protocol's best baseline on the same cases (EVALUATION.md's bar)
    best = max(BASELINES, key=lambda name: float(np.nanmean(baselines[name][0])))
    both = ~np.isnan(served_ndcg) & ~np.isnan(baselines[best][0])
    base_lo, base_hi = paired_bootstrap_interval(served_ndcg[both], baselines[best][0][both], seed=seed)
    served_mean, base_mean = float(np.mean(served_ndcg[both])), float(np.mean(baselines[best][0][both]))

    report: dict[str, Any] = {
        "test_users": len(parts.cases),
        "delay_s": delay_s,
        "served": {
            **_summary(served_ndcg, served_recall, seed=seed),
            "served_by": dict(Counter(served_by).most_common()),
            "fallback_reasons": dict(Counter(str(a.fallback_reason) for a in answers).most_common()),
        },
        "offline": {name: _summary(*pair, seed=seed) for name, pair in offline.items()},
        "baselines": {name: _summary(*pair, seed=seed) for name, pair in baselines.items()},
        "served_vs_offline": {
            "users": int(paired.sum()),
            "served": round(float(np.mean(served_ndcg[paired])), 4) if paired.any() else None,
            "offline": round(float(np.mean(counterpart[paired])), 4) if paired.any() else None,
            "ndcg@5_diff_ci": [round(lo, 4), round(hi, 4)],
        },
        "served_vs_best_baseline": {
            "baseline": best,
            "users": int(both.sum()),
            "ndcg@5_diff": round(served_mean - base_mean, 4),
            "ndcg@5_diff_ci": [round(base_lo, 4), round(base_hi, 4)],
            "relative": round((served_mean - base_mean) / base_mean, 4) if base_mean > 0 else None,
            "excludes_zero": bool(base_lo > 0 or base_hi < 0),
        },
        "by_ranker": {},
        "by_gap": {},
    }
    for name in dict.fromkeys(served_by):
        mask = np.array([s == name for s in served_by])
        report["by_ranker"][name] = {
            "served": _summary(served_ndcg[mask], served_recall[mask], seed=seed),
            **(
                {"offline": _summary(*(a[mask] for a in offline[name]), seed=seed)} if name in offline else {}
            ),
        }
    for label, _bound in GAP_BUCKETS:
        mask = buckets == label
        if not mask.any():
            continue
        entry: dict[str, Any] = {
            "users": int(mask.sum()),
            "served": _summary(served_ndcg[mask], served_recall[mask], seed=seed),
            "served_by": dict(Counter(s for s, m in zip(served_by, mask, strict=True) if m).most_common()),
        }
        entry["offline"] = {n: _summary(a[mask], b[mask], seed=seed) for n, (a, b) in offline.items()}
        entry["baselines"] = {n: _summary(a[mask], b[mask], seed=seed) for n, (a, b) in baselines.items()}
        report["by_gap"][label] = entry
    return report


def _by_name(own: np.ndarray, own_categories: Sequence[str], categories: Sequence[str]) -> np.ndarray:
    """A model's scores[case, its category] as scores[case, category] of ``categories`` (by name)."""
    position = {c: i for i, c in enumerate(own_categories)}
    scores = np.full((own.shape[0], len(categories)), NOT_SERVED)
    for column, category in enumerate(categories):
        if category in position:
            scores[:, column] = own[:, position[category]]
    return scores


def _shifted(parts: Split, delay_s: float) -> Split:
    if not delay_s:
        return parts
    from dataclasses import replace

    cases = tuple(replace(case, prediction_ts=case.prediction_ts + delay_s) for case in parts.cases)
    return replace(parts, cases=cases)


def _real_predict(budget_ms: float | None) -> Predict:
    """The process's predictor, rebuilt so that it loads the versions the run just activated."""
    from inference.serving.deadline import Deadline
    from inference.serving.runtime import predictor, predictor_install

    predictor_install(None)
    current = predictor()

    def predict(user_id: str, now: float) -> Any:
        deadline = Deadline(budget_ms) if budget_ms is not None else Deadline.from_settings()
        return current.predict(user_id, deadline=deadline, top=10, now=now)

    return predict


def serving_table(report: Mapping[str, Any]) -> str:
    """The report as a few lines of text (the command prints it)."""
    served = report["served"]
    lines = [
        f"{report['dataset']}, {report['split']} split: {report['test_users']} test users"
        + (f", served {report['delay_s'] / DAY:g} days after the cut-off" if report.get("delay_s") else ""),
        f"served: NDCG@5 {served.get('ndcg@5', float('nan')):.3f} "
        f"({served['ndcg@5_ci'][0]:.3f}-{served['ndcg@5_ci'][1]:.3f}), by "
        + ", ".join(f"{name} {n}" for name, n in served["served_by"].items()),
        "offline, the served artifacts with features replayed (and the protocol's baselines):",
    ]
    for group in ("offline", "baselines"):
        for name, result in report[group].items():
            if result.get("users"):
                lo, hi = result["ndcg@5_ci"]
                tag = name if group == "offline" else f"({name})"
                lines.append(f"  {tag:<13} {result['ndcg@5']:.3f} ({lo:.3f}-{hi:.3f})")
    skew = report["served_vs_offline"]
    if skew["users"]:
        lo, hi = skew["ndcg@5_diff_ci"]
        lines.append(
            f"served - offline of the ranker that served, paired over {skew['users']} users: "
            f"{skew['served'] - skew['offline']:+.4f} (95% CI {lo:+.4f} to {hi:+.4f})"
        )
    versus = report.get("served_vs_best_baseline") or {}
    if versus.get("users"):
        lo, hi = versus["ndcg@5_diff_ci"]
        lines.append(
            f"served - best baseline ({versus['baseline']}), paired: {versus['ndcg@5_diff']:+.4f} "
            f"({versus['relative']:+.1%}; 95% CI {lo:+.4f} to {hi:+.4f})"
        )
    columns = [("offline", n) for n in report["offline"]] + [
        ("baselines", n) for n in ("frequency", "decayed")
    ]
    header = " ".join(f"{n if g == 'offline' else '(' + n + ')':>11}" for g, n in columns)
    lines.append(f"{'since last event':<17} {'users':>5} {'served':>7} {header}")
    for label, entry in report["by_gap"].items():
        cells = " ".join(f"{entry[g][n].get('ndcg@5', float('nan')):>11.3f}" for g, n in columns)
        served_here = entry["served"].get("ndcg@5", float("nan"))
        lines.append(f"{label:<17} {entry['users']:>5} {served_here:>7.3f} {cells}")
    return "\n".join(lines)

"""The training pipeline: events -> fresh models -> offline metrics on a later slice -> registry.

``training_run_execute`` is the one service behind ``manage.py train`` and the Celery task
``inference.train_models``. Promises:

- One run at a time, and a run whose process died never stays ``running``: the lock's lease
  (``inference.registry.run_lock``). Nothing a killed run was writing is registered (artifacts are
  renamed into place only when complete), so the active version serves on.
- Events come from the app that stores them and the categories from the site
  (``inference.signals.stored_events`` / ``site_categories``: tracking and the content app answer);
  inference imports neither app.
- What the models are judged on and when a candidate is activated: ``inference.registry.judging`` (the
  time split of EVALUATION.md, or the user split when the time slice holds too few visitors; the models'
  own early-stopping split follows the same kind; the version's ``metrics["slice"]`` says which and why).
- After the learned models and the baselines, the blend of the serving neural and gbdt versions is built,
  judged on the same slice and registered (``inference.registry.blending``); a blend that fails costs only
  itself (the run succeeds, its outcome says why).
- Artifacts are written to a temporary directory under ``MODEL_DIR`` and renamed into place, so a
  version directory is either complete or absent.
- A candidate worse than the best baseline is registered, never served; an active version that scores
  below the best baseline on the slice is withdrawn (retired) under ``"auto"``, so the chain falls to
  the baseline ranker rather than serve it. A failed run, or a candidate that scores below the active
  one, leaves the active version serving.
- The servable baselines (``decayed``, ``frequency``, ``recent``, ``popularity``:
  ``inference.models.baselines``) are registered by every run with the same slice's figures, and the
  best one on the slice is activated (``auto``/``always``; the others are withdrawn).
- Every active ranker carries its NDCG@5 on this run's slice (``ModelVersion.validation_score``: a
  candidate its own, a kept active version the figure it scored beside the candidate, an active learned
  version this run did not train is judged on the slice too), and the chain tries them best first,
  whatever the algorithm (``inference.serving.slots.serving_order``): LightGBM serves before the network
  when it validated better, the baseline ranker after both when they beat it, instead of them otherwise.
- With ``INFERENCE["REFIT_ON_ALL"]`` (default), an activated model is trained again on every event
  (the slice included) before it is saved: the protocol's models see everything before the cut-off,
  and so does the served one. Its metrics are those of the copy judged on the slice.
- Progress (stage, percent, message) is written to the :class:`TrainingRun` row as it goes, and
  reported to an optional callback (the command's tqdm bar).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.utils import timezone

from inference.conf import inference_setting
from inference.events import EventRecord
from inference.registry import selectors, services
from inference.registry.artifacts import artifact_save, feature_schema_version
from inference.registry.blending import blend_register
from inference.registry.judging import (
    BASELINE_ALGORITHMS,
    PRIMARY_METRIC,
    activation_decide,
    best_baseline,
    metric,
    validation_split,
)
from inference.registry.models import TrainingRun
from inference.registry.run_lock import RunLease, training_runs_abandoned_fail
from inference.training.cluster import ENGINES, TrainingEngine, training_engine

logger = logging.getLogger(__name__)

ALGORITHMS = ("neural", "gbdt")
# the evaluation's baselines that serve as rankers (inference.models.baselines), best first on ties
ACTIVATE_CHOICES = ("auto", "always", "never")
# the fewest visitors the time slice must hold before the run trusts it over the user split

# stage -> (start %, end %) of the whole run
STAGES = {"events": (0, 10), "train": (10, 80), "evaluate": (80, 95), "register": (95, 100)}

ProgressCallback = Callable[[str, float, str], None]


@dataclass
class TrainingParts:
    """What the pipeline calls; the defaults are the real parts, tests pass doubles."""

    event_source: Callable[..., Iterable[list[EventRecord]]] | None = None
    category_source: Callable[[], Sequence[str]] | None = None
    trainer: Callable[..., Any] | None = None  # inference.models.model_train
    evaluator: Callable[..., Mapping[str, Any]] | None = None  # inference.evaluation.models_offline_metrics
    loader: Callable[[Path], Any] | None = None  # inference.models.model_load
    baseline_builder: Callable[..., Any] | None = None  # inference.models.baseline_ranker_train

    def resolved(self) -> TrainingParts:
        from inference.evaluation.models import models_offline_metrics
        from inference.models import baseline_ranker_train, model_load, model_train
        from inference.signals import site_categories, stored_events

        return TrainingParts(
            event_source=self.event_source or stored_events,
            category_source=self.category_source or site_categories,
            trainer=self.trainer or model_train,
            evaluator=self.evaluator or models_offline_metrics,
            loader=self.loader or model_load,
            baseline_builder=self.baseline_builder or baseline_ranker_train,
        )


class _Progress:
    """Writes progress to the run row at most every half second (and at stage changes)."""

    def __init__(self, run: TrainingRun, callback: ProgressCallback | None) -> None:
        self.run = run
        self.callback = callback
        self._written = 0.0

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        low, high = STAGES[stage]
        percent = low + (high - low) * min(max(fraction, 0.0), 1.0)
        if self.callback is not None:
            self.callback(stage, percent, message)
        now = time.monotonic()
        if stage != self.run.stage or now - self._written >= 0.5 or percent >= 100:
            self.run.stage, self.run.percent, self.run.message = stage, round(percent, 1), message[:255]
            self.run.save(update_fields=["stage", "percent", "message"])
            self._written = now


def _as_datetime(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=UTC) if ts is not None else None


def _events_collect(
    parts: TrainingParts, since: datetime | None, until: datetime | None, progress: _Progress
) -> list[EventRecord]:
    events: list[EventRecord] = []
    assert parts.event_source is not None
    for chunk in parts.event_source(since=since, until=until):
        events.extend(chunk)
        progress("events", 0.5, f"read {len(events):,} events")
    events.sort(key=lambda e: e.ts)  # stable; the source promises time order already
    return events


def _train_one(
    algorithm: str,
    *,
    parts: TrainingParts,
    events: list[EventRecord],
    train_events: Sequence[EventRecord],
    categories: Sequence[str],
    quantile: float,
    kind: str,
    activate: str,
    progress: _Progress,
    slot: tuple[float, float],
    engine: TrainingEngine,
) -> dict[str, Any]:
    assert parts.trainer is not None and parts.evaluator is not None and parts.loader is not None
    began = time.perf_counter()

    def model_progress(fraction: float, message: str) -> None:
        progress("train", slot[0] + (slot[1] - slot[0]) * fraction, message)

    model = parts.trainer(
        algorithm=algorithm,
        events=train_events,
        categories=categories,
        horizon=int(inference_setting("HORIZON")),
        device=str(inference_setting("DEVICE")),
        validation=kind,
        hyperparameters=dict((inference_setting("HYPERPARAMETERS") or {}).get(algorithm, {})),
        progress=model_progress,
        **_engine_argument(engine),
    )
    seconds = time.perf_counter() - began
    facts = _engine_facts(engine, algorithm, model, seconds)

    progress("evaluate", 0.0, f"{algorithm}: scoring the later slice")
    active_row = selectors.model_version_active(algorithm=algorithm)
    contenders: dict[str, Any] = {"model": model}
    if active_row is not None and activate == "auto":
        try:
            contenders["active"] = parts.loader(
                selectors.artifact_dir_for(artifact_path=active_row.artifact_path)
            )
        except Exception as exc:  # a broken active version cannot block its replacement
            logger.warning("inference.training_active_unloadable %s: %r", active_row.version, exc)
    results = dict(
        parts.evaluator(
            contenders,
            events=events,
            split=kind,
            quantile=quantile,
            horizon=int(inference_setting("HORIZON")),
        )
    )
    test_users = results.pop("test_users", None)
    candidate_score, active_score = metric(results, "model"), metric(results, "active")
    baseline = best_baseline(results)
    do_activate, why = activation_decide(activate, candidate_score, active_score, active_row is not None, baseline)
    withdrawn = None
    if (
        activate == "auto"
        and not do_activate
        and active_row is not None
        and baseline is not None
        and active_score is not None
        and active_score < baseline[1]
    ):
        withdrawn = active_row.version
        services.model_version_withdraw(
            version=active_row.version,
            actor="training",
            reason=f"{PRIMARY_METRIC} {active_score:.4f} < best baseline {baseline[0]} {baseline[1]:.4f}",
        )
    elif not do_activate and active_row is not None and active_score is not None:
        # the version kept serving was judged on this run's slice too: the chain orders by that figure
        services.model_version_score(version=active_row.version, score=active_score)

    served = model
    refit = None
    if do_activate and bool(inference_setting("REFIT_ON_ALL")) and len(events) > len(train_events):
        progress("train", slot[1], f"{algorithm}: training again on all {len(events):,} events")
        refit_began = time.perf_counter()
        served = parts.trainer(
            algorithm=algorithm,
            events=events,
            categories=categories,
            horizon=int(inference_setting("HORIZON")),
            device=str(inference_setting("DEVICE")),
            validation=kind,
            hyperparameters=dict((inference_setting("HYPERPARAMETERS") or {}).get(algorithm, {})),
            **_engine_argument(engine),
        )
        refit = {"events": len(events), "seconds": round(time.perf_counter() - refit_began, 2)}
        train_events = events

    progress("register", 0.0, f"{algorithm}: saving artifacts")
    version = services.model_version_name(algorithm=algorithm)
    artifact_save(served, version)
    train_from = train_events[0].ts if train_events else None
    train_to = train_events[-1].ts if train_events else None
    metrics = {
        "slice": {
            "split": kind,
            "quantile": quantile,
            "test_users": test_users,
            "compared_with": active_row.version if active_row else None,
        },
        "results": results,
        "decision": why,
        "best_baseline": list(baseline) if baseline is not None else None,
        "engine": facts,
    }
    if refit is not None:
        metrics["refit"] = refit
    if withdrawn is not None:
        metrics["withdrawn"] = withdrawn
    row = services.model_version_register(
        algorithm=algorithm,
        version=version,
        artifact_path=version,
        hyperparameters=dict(getattr(served, "hyperparameters", {}) or {}),
        data_from=_as_datetime(train_from),
        data_to=_as_datetime(train_to),
        feature_schema_version=feature_schema_version(),
        metrics=metrics,
        training_seconds=seconds,
    )
    if do_activate:
        services.model_version_activate(version=row.version, actor="training", reason=why)
    return {
        "version": row.version,
        "activated": do_activate,
        "reason": why,
        PRIMARY_METRIC: candidate_score,
        "results": results,
        "test_users": test_users,
        "quantile": quantile,
        "split": kind,
        "facts": facts,
        # the copy judged on the slice (not refitted on it): what the blend of this run is judged with
        "judged": model,
    }


def _others_rescore(
    trained: Sequence[str],
    outcome: Mapping[str, Mapping[str, Any]],
    *,
    parts: TrainingParts,
    events: list[EventRecord],
    quantile: float,
    kind: str,
    activate: str,
) -> dict[str, Any]:
    """Judge the active learned versions this run did not train (``--algorithm gbdt`` leaves neural
    serving) on this run's slice, so that the chain orders every active ranker by the same slice; under
    ``"auto"`` one below the best baseline is withdrawn, like a trained one. Returns the outcome entry
    of each (``activated``: still serving)."""
    assert parts.evaluator is not None and parts.loader is not None
    done: dict[str, Any] = {}
    if activate == "never":
        return done
    baseline = next(
        (b for o in outcome.values() if (b := best_baseline(o.get("results") or {})) is not None), None
    )
    for algorithm in ALGORITHMS:
        row = selectors.model_version_active(algorithm=algorithm)
        if algorithm in trained or row is None:
            continue
        try:
            model = parts.loader(selectors.artifact_dir_for(artifact_path=row.artifact_path))
        except Exception as exc:  # the chain falls through a broken version already
            logger.warning("inference.training_active_unloadable %s: %r", row.version, exc)
            continue
        results = parts.evaluator(
            {"active": model},
            events=events,
            split=kind,
            quantile=quantile,
            horizon=int(inference_setting("HORIZON")),
        )
        score = metric(results, "active")
        if score is None:
            continue
        serving, why = services.model_version_rejudge(
            version=row.version, score=score, baseline=baseline, activate=activate
        )
        done[algorithm] = {
            "version": row.version,
            "activated": serving,
            "reason": why,
            PRIMARY_METRIC: score,
        }
    return done


def _engine_argument(engine: TrainingEngine) -> dict[str, Any]:
    # the local engine calls the trainer as it always was (tests' doubles take no engine)
    return {"engine": engine} if engine.client is not None else {}


def _engine_facts(engine: TrainingEngine, algorithm: str, model: Any, seconds: float) -> dict[str, Any]:
    """Where and how one model was trained: the ``--json`` facts, kept with the version."""
    training = dict(getattr(model, "training", {}) or {})
    return {
        **engine.facts(),
        "training_set": training.get("training_set"),
        algorithm: {**(training.get("engine") or {}), "seconds": round(seconds, 2)},
    }


def training_facts(run: TrainingRun) -> dict[str, Any]:
    """The facts of a finished run (``manage.py train --json``): the engine, workers, partitions, the
    training set (rows, seconds) and each model's engine (``gbdt``: lightgbm[.dask], ``neural``:
    torch[.distributed] with its world size)."""
    facts: dict[str, Any] = {"status": run.status, "run": run.pk}
    for algorithm in ALGORITHMS:
        entry = (run.outcome or {}).get(algorithm) or {}
        own = entry.get("facts") or {}
        for key in ("engine", "workers", "partitions", "scheduler"):
            if key in own:
                facts[key] = own[key]
        if own.get("training_set") and "training_set" not in facts:
            facts["training_set"] = own["training_set"]
        if algorithm in own:
            facts[algorithm] = {**own[algorithm], "version": entry.get("version")}
    if run.status == TrainingRun.Status.FAILED:
        facts["error"] = run.message
    return facts


def _baselines_register(
    outcome: Mapping[str, Mapping[str, Any]],
    *,
    parts: TrainingParts,
    events: Sequence[EventRecord],
    categories: Sequence[str],
    activate: str,
) -> dict[str, Any] | None:
    """Register the best servable baseline of the slice (the learned runs scored the baselines on it)
    and, unless ``activate="never"``, serve it; the other baseline rankers are withdrawn."""
    assert parts.baseline_builder is not None
    scored = next((o for o in outcome.values() if best_baseline(o.get("results") or {})), None)
    if scored is None:
        return None
    results = dict(scored["results"])
    best = best_baseline(results)
    assert best is not None
    name, value = best
    ranker = parts.baseline_builder(algorithm=name, events=events, categories=categories)
    version = services.model_version_name(algorithm=name)
    artifact_save(ranker, version)
    others = ", ".join(
        f"{other} {metric(results, other):.4f}"
        for other in BASELINE_ALGORITHMS
        if other != name and metric(results, other) is not None
    )
    why = f"best baseline on the slice: {name} {PRIMARY_METRIC} {value:.4f}" + (
        f" (vs {others})" if others else ""
    )
    row = services.model_version_register(
        algorithm=name,
        version=version,
        artifact_path=version,
        hyperparameters=dict(getattr(ranker, "hyperparameters", {}) or {}),
        data_from=_as_datetime(events[0].ts if events else None),
        data_to=_as_datetime(events[-1].ts if events else None),
        feature_schema_version=feature_schema_version(),
        metrics={
            "slice": {
                "split": scored.get("split", "time"),
                "quantile": scored.get("quantile"),
                "test_users": scored.get("test_users"),
            },
            # "model" is this ranker (the slice's results hold the learned candidate under that name)
            "results": {**results, "model": results.get(name)},
            "decision": why,
            "best_baseline": [name, value],
        },
        training_seconds=0.0,
    )
    activated = activate != "never"
    if activated:
        services.model_version_activate(version=row.version, actor="training", reason=why)
        for other in BASELINE_ALGORITHMS:
            current = selectors.model_version_active(algorithm=other)
            if other != name and current is not None:
                services.model_version_withdraw(
                    version=current.version, actor="training", reason=f"{name} is the best baseline: {why}"
                )
    return {"version": row.version, "activated": activated, "reason": why, PRIMARY_METRIC: value}


def training_run_execute(
    *,
    algorithm: str = "all",
    since: datetime | None = None,
    until: datetime | None = None,
    activate: str = "auto",
    progress: ProgressCallback | None = None,
    parts: TrainingParts | None = None,
    engine: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> TrainingRun:
    """Train, evaluate, register (and maybe activate) models; returns the finished run row.

    ``engine``/``scheduler`` (default ``INFERENCE["TRAINING_ENGINE"]`` / ``["TRAINING_SCHEDULER"]``):
    ``local``, or ``dask`` on the cluster at ``scheduler`` (a LocalCluster when empty). A lost worker
    that Dask cannot retry around fails the run like any other error: the active versions keep
    serving and the run row records the failure."""
    engine = engine or str(inference_setting("TRAINING_ENGINE") or "local")
    scheduler = scheduler or (str(inference_setting("TRAINING_SCHEDULER") or "") or None)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    algorithms = ALGORITHMS if algorithm == "all" else (algorithm,)
    if any(a not in ALGORITHMS for a in algorithms):
        raise ValueError(f"algorithm must be one of {ALGORITHMS} or 'all', not {algorithm!r}")
    if activate not in ACTIVATE_CHOICES:
        raise ValueError(f"activate must be one of {ACTIVATE_CHOICES}, not {activate!r}")
    options = {
        "algorithm": algorithm,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "activate": activate,
        "engine": engine,
        "scheduler": scheduler,
    }
    training_runs_abandoned_fail()  # a dead run's lock must not skip this one
    lease = RunLease.acquire()
    if lease is None:
        return TrainingRun.objects.create(
            status=TrainingRun.Status.SKIPPED,
            options=options,
            message="another training run holds the lock",
            finished_at=timezone.now(),
        )
    try:
        run = TrainingRun.objects.create(
            status=TrainingRun.Status.RUNNING, options={**options, "runner": lease.runner, "lock": lease.token},
            stage="events",
        )
    except BaseException:  # no run row (the database is away): nothing may keep the lock renewed
        lease.release()
        raise
    reporter = _Progress(run, progress)
    try:
        parts = (parts or TrainingParts()).resolved()
        reporter("events", 0.0, "reading events")
        events = _events_collect(parts, since, until, reporter)
        assert parts.category_source is not None
        categories = list(parts.category_source()) or sorted({c for e in events for c in e.categories})
        if not events or not categories:
            raise ValueError(f"nothing to train on: {len(events)} events, {len(categories)} categories")
        quantile = 1.0 - float(inference_setting("EVAL_FRACTION"))
        validation, why_slice = validation_split(
            events, quantile=quantile, horizon=int(inference_setting("HORIZON"))
        )
        train_events = list(validation.train)
        reporter(
            "events",
            1.0,
            f"{len(events):,} events, {len(train_events):,} before the evaluation slice"
            + (f" ({why_slice})" if why_slice else ""),
        )
        outcome: dict[str, Any] = {}
        with training_engine(
            engine,
            scheduler=scheduler,
            workers=workers,
            shard_dir=str(inference_setting("TRAINING_SHARD_DIR") or "") or None,
        ) as running:
            for index, name in enumerate(algorithms):
                share = 1.0 / len(algorithms)
                outcome[name] = _train_one(
                    name,
                    parts=parts,
                    events=events,
                    train_events=train_events,
                    categories=categories,
                    quantile=quantile,
                    kind=validation.kind,
                    activate=activate,
                    progress=reporter,
                    slot=(index * share, (index + 1) * share),
                    engine=running,
                )
        rescored = _others_rescore(
            algorithms,
            outcome,
            parts=parts,
            events=events,
            quantile=quantile,
            kind=validation.kind,
            activate=activate,
        )
        ranker = _baselines_register(
            outcome, parts=parts, events=events, categories=categories, activate=activate
        )
        reporter("register", 0.5, "blend: judging the mean of the serving neural and gbdt versions")
        try:
            blend = blend_register(
                outcome, parts=parts, events=events, quantile=quantile, kind=validation.kind, activate=activate
            )
        except Exception as exc:  # the members are registered and serve: a blend that fails costs only itself
            logger.exception("inference.blend_failed")
            blend = {"version": None, "activated": False, "reason": f"failed: {type(exc).__name__}: {exc}"[:255]}
        for entry in outcome.values():  # the slice's figures are stored with the versions already
            for key in ("results", "test_users", "quantile", "split", "judged"):
                entry.pop(key, None)
        if ranker is not None:
            outcome["baseline"] = ranker
        outcome.update(rescored)  # the active learned versions this run did not train, judged again
        if blend is not None:
            outcome["blend"] = blend
        run.outcome = outcome
        run.status = TrainingRun.Status.SUCCEEDED
        reporter(
            "register", 1.0, "; ".join(f"{n}: {o['version']} ({o['reason']})" for n, o in outcome.items())
        )
    except Exception as exc:
        logger.exception("inference.training_failed")
        run.status = TrainingRun.Status.FAILED
        run.error = (
            "".join(traceback.format_exception_only(type(exc), exc)).strip()
            + "\n\n"
            + traceback.format_exc()[-4000:]
        )
        run.message = f"failed: {type(exc).__name__}: {exc}"[:255]
    finally:
        try:
            run.finished_at = timezone.now()
            run.save()
        finally:
            lease.release()
    return run

"""The blend in the registry: every training run builds the mean of the serving neural and gbdt versions
(``inference.models.blend``), judges it on the run's slice and registers it as a ranker of its own.

Promises (``blend_register``, called by ``training.training_run_execute`` after the members are settled):

- It is built from the versions that serve *after* the run, judged from the copies the run judged on its
  slice (a member the run did not activate: its serving version), and activated by the rule the models
  follow (under ``"auto"``: at least the best baseline of the slice); the chain then tries it by that figure.
- The version saved holds the members as they serve (refitted on every event when they were), in its own
  directory; its ``hyperparameters["member_versions"]`` names them. A change of either member's serving
  version withdraws it (``services``), so it never serves beside versions it does not hold.
- An active blend of exactly the serving members is judged again, not rebuilt.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from inference.conf import inference_setting
from inference.events import EventRecord
from inference.models.blend import BLEND_MEMBERS, BlendMismatch, BlendModel
from inference.registry import selectors, services
from inference.registry.artifacts import artifact_save, feature_schema_version
from inference.registry.judging import PRIMARY_METRIC, activation_decide, best_baseline, metric

if TYPE_CHECKING:
    from inference.registry.training import TrainingParts

logger = logging.getLogger(__name__)

__all__ = ["blend_register"]


def blend_register(
    outcome: Mapping[str, Mapping[str, Any]],
    *,
    parts: TrainingParts,
    events: list[EventRecord],
    quantile: float,
    kind: str,
    activate: str,
) -> dict[str, Any] | None:
    """Build, judge and register (or judge again) the blend of the serving members; its outcome entry for
    the run. None when the blend is off (``INFERENCE["BLEND"]``) or a member has no serving version."""
    assert parts.evaluator is not None and parts.loader is not None
    if not bool(inference_setting("BLEND")):
        return None
    rows = {name: selectors.model_version_active(algorithm=name) for name in BLEND_MEMBERS}
    if any(row is None for row in rows.values()):
        return None
    versions = {name: row.version for name, row in rows.items() if row is not None}
    current = selectors.model_version_active(algorithm="blend")
    # the serving members as saved (refitted on every event when they were): what the saved blend holds
    saved = {
        name: parts.loader(selectors.artifact_dir_for(artifact_path=row.artifact_path))
        for name, row in rows.items() if row is not None
    }
    try:
        judged = []
        for name in BLEND_MEMBERS:
            entry = outcome.get(name) or {}
            trained_here = entry.get("version") == versions[name] and entry.get("judged") is not None
            judged.append(entry["judged"] if trained_here else saved[name])
        candidate = BlendModel(judged)
    except BlendMismatch as exc:
        logger.warning("inference.blend_unbuilt %s: %r", versions, exc)
        return {"version": None, "activated": False, "reason": f"not built: {exc}"[:255], PRIMARY_METRIC: None}
    results = dict(
        parts.evaluator(
            {"model": candidate}, events=events, split=kind, quantile=quantile,
            horizon=int(inference_setting("HORIZON")),
        )
    )
    test_users = results.pop("test_users", None)
    score, baseline = metric(results, "model"), best_baseline(results)
    held = ((current.hyperparameters or {}).get("member_versions") if current is not None else None) or {}
    if current is not None and held == versions:
        serving, why = services.model_version_rejudge(
            version=current.version, score=score, baseline=baseline, activate=activate
        )
        why = why if not serving else f"the same members, {why}"
        return {"version": current.version, "activated": serving, "reason": why, PRIMARY_METRIC: score}
    do_activate, why = activation_decide(activate, score, None, False, baseline)
    served = BlendModel([saved[name] for name in BLEND_MEMBERS])
    version = services.model_version_name(algorithm="blend")
    artifact_save(served, version)
    froms = [row.data_from for row in rows.values() if row is not None and row.data_from is not None]
    tos = [row.data_to for row in rows.values() if row is not None and row.data_to is not None]
    row = services.model_version_register(
        algorithm="blend",
        version=version,
        artifact_path=version,
        hyperparameters={**served.hyperparameters, "member_versions": versions},
        data_from=min(froms, default=None),
        data_to=max(tos, default=None),
        feature_schema_version=feature_schema_version(),
        metrics={
            "slice": {"split": kind, "quantile": quantile, "test_users": test_users},
            "results": results,
            "decision": why,
            "best_baseline": list(baseline) if baseline is not None else None,
            "members": versions,
        },
        training_seconds=0.0,
    )
    if do_activate:
        services.model_version_activate(version=row.version, actor="training", reason=why)
    return {"version": row.version, "activated": do_activate, "reason": why, PRIMARY_METRIC: score}

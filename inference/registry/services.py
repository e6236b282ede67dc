"""Writes to the registry: register a candidate, activate, roll back, retire; set the shadow.

Each change of the serving version is one transaction (row lock on the algorithm's versions) that
flips the statuses and writes a :class:`ModelActivation` audit row; web processes notice the change on
their next poll (``INFERENCE["RELOAD_POLL_SECONDS"]``) and swap the model in.
"""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from inference.models.blend import BLEND_MEMBERS
from inference.registry.judging import PRIMARY_METRIC
from inference.registry.models import ModelActivation, ModelVersion, ShadowConfig


class RegistryError(Exception):
    """A registry operation that cannot be done (unknown version, nothing to roll back to, ...)."""


class ModelVersionNotFound(RegistryError):
    """The named version is not in the registry (the API answers 404, not a conflict)."""


def model_version_name(*, algorithm: str, at: datetime | None = None) -> str:
    """``<algorithm>-YYYYMMDD-HHMM-<4 hex>`` in UTC."""
    at = (at or timezone.now()).astimezone(UTC)
    return f"{algorithm}-{at:%Y%m%d-%H%M}-{secrets.token_hex(2)}"


def model_version_register(
    *,
    algorithm: str,
    version: str,
    artifact_path: str,
    hyperparameters: dict[str, Any] | None = None,
    data_from: datetime | None = None,
    data_to: datetime | None = None,
    feature_schema_version: str = "",
    metrics: dict[str, Any] | None = None,
    training_seconds: float = 0.0,
) -> ModelVersion:
    """Record a trained model as a candidate (its artifacts must already be in place). Its validation
    score is the NDCG@5 its run measured on the slice (``metrics["results"]["model"]``), if any."""
    if algorithm not in ModelVersion.Algorithm.values:
        raise RegistryError(f"unknown algorithm {algorithm!r}")
    return ModelVersion.objects.create(
        version=version,
        algorithm=algorithm,
        status=ModelVersion.Status.CANDIDATE,
        artifact_path=artifact_path,
        hyperparameters=hyperparameters or {},
        data_from=data_from,
        data_to=data_to,
        feature_schema_version=str(feature_schema_version),
        metrics=_json_safe(metrics or {}),
        training_seconds=training_seconds,
        validation_score=_finite((((metrics or {}).get("results") or {}).get("model") or {}).get("ndcg@5")),
    )


def _json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity made None: a run's figures can hold one (an ECE with no pairs,
    a metric over an empty slice), and PostgreSQL's JSON refuses them, which failed the whole registration."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def model_version_score(*, version: str, score: float | None) -> None:
    """Record ``version``'s NDCG@5 on the validation slice of a later run (the chain's order follows it)."""
    ModelVersion.objects.filter(version=version).update(validation_score=_finite(score))


def model_version_rejudge(
    *, version: str, score: float | None, baseline: tuple[str, float] | None, activate: str
) -> tuple[bool, str]:
    """A serving version judged again on a later training run's slice: under ``"auto"`` one below the
    slice's best baseline is withdrawn, any other keeps serving with that figure (the chain's order
    follows it). Returns (still serving, why)."""
    if activate == "auto" and baseline is not None and score is not None and score < baseline[1]:
        why = f"{PRIMARY_METRIC} {score:.4f} < best baseline {baseline[0]} {baseline[1]:.4f}: withdrawn"
        model_version_withdraw(version=version, actor="training", reason=why)
        return False, why
    model_version_score(version=version, score=score)
    figure = f"{score:.4f}" if score is not None else "not scored"
    return True, f"judged again on this run's slice: {PRIMARY_METRIC} {figure}"


def _locked(version: str) -> ModelVersion:
    try:
        return ModelVersion.objects.select_for_update().get(version=version)
    except ModelVersion.DoesNotExist:
        raise ModelVersionNotFound(f"no model version {version!r}") from None


def _switch(*, target: ModelVersion, action: str, actor: str, reason: str) -> ModelVersion:
    # lock every version of the algorithm so two concurrent activations serialize
    current = (
        ModelVersion.objects.select_for_update()
        .filter(algorithm=target.algorithm, status=ModelVersion.Status.ACTIVE)
        .first()
    )
    if current is not None and current.pk == target.pk:
        return target
    if current is not None:
        current.status = ModelVersion.Status.RETIRED
        current.save(update_fields=["status"])
    target.status = ModelVersion.Status.ACTIVE
    target.activated_at = timezone.now()
    target.save(update_fields=["status", "activated_at"])
    # a shadow that becomes the serving version has nothing left to be compared with
    ShadowConfig.objects.filter(version=target).delete()
    ModelActivation.objects.create(
        algorithm=target.algorithm,
        action=action,
        version=target,
        previous=current,
        actor=actor,
        reason=reason,
    )
    _blend_follow(target.algorithm, target.version, actor=actor)
    return target


def _blend_follow(algorithm: str, serving: str | None, *, actor: str) -> None:
    """A blend serves the member versions it was built from, never beside others: when the serving
    version of one of its algorithms changes (a run, an activation, a rollback, a withdrawal), the
    active blend that holds another version of it is withdrawn; the next training run builds the blend of
    the new pair. Runs inside the caller's transaction."""
    if algorithm not in BLEND_MEMBERS:
        return
    blend = (
        ModelVersion.objects.select_for_update()
        .filter(algorithm=ModelVersion.Algorithm.BLEND, status=ModelVersion.Status.ACTIVE)
        .first()
    )
    if blend is None:
        return
    held = ((blend.hyperparameters or {}).get("member_versions") or {}).get(algorithm)
    if held == serving:
        return
    _retire_audited(blend, actor=actor, reason=f"{algorithm} serves {serving or 'no version'} now, not the blend's {held}")


def _retire_audited(target: ModelVersion, *, actor: str, reason: str) -> None:
    """Retire a (locked) version and write the audit row that says who and why."""
    if target.status != ModelVersion.Status.RETIRED:
        target.status = ModelVersion.Status.RETIRED
        target.save(update_fields=["status"])
    ModelActivation.objects.create(
        algorithm=target.algorithm,
        action=ModelActivation.Action.RETIRE,
        version=target,
        actor=actor,
        reason=reason[:255],
    )


@transaction.atomic
def model_version_activate(*, version: str, actor: str = "system", reason: str = "") -> ModelVersion:
    """Make ``version`` the serving version of its algorithm; the previous one becomes retired."""
    return _switch(
        target=_locked(version), action=ModelActivation.Action.ACTIVATE, actor=actor, reason=reason
    )


@transaction.atomic
def model_version_rollback(*, algorithm: str, actor: str = "system", reason: str = "") -> ModelVersion:
    """Serve again the version that was active before the current one (its artifacts must still exist)."""
    current = (
        ModelVersion.objects.select_for_update()
        .filter(algorithm=algorithm, status=ModelVersion.Status.ACTIVE)
        .first()
    )
    if current is None:
        raise RegistryError(f"no active {algorithm} version to roll back from")
    # the activation that made `current` active tells which version served before it
    entry = (
        ModelActivation.objects.filter(
            version=current, action__in=[ModelActivation.Action.ACTIVATE, ModelActivation.Action.ROLLBACK]
        )
        .exclude(previous=None)
        .select_related("previous")
        .first()
    )
    if entry is None or entry.previous is None:
        raise RegistryError(f"{current.version} has no previously active version to roll back to")
    target = _locked(entry.previous.version)
    return _switch(
        target=target,
        action=ModelActivation.Action.ROLLBACK,
        actor=actor,
        reason=reason or f"rollback from {current.version}",
    )


@transaction.atomic
def model_version_withdraw(*, version: str, actor: str = "system", reason: str = "") -> ModelVersion:
    """Stop serving ``version`` without a replacement (it becomes retired; the chain's next ranker
    answers): what training does with an active version that scores below the best baseline."""
    target = _locked(version)
    if target.status != ModelVersion.Status.ACTIVE:
        return target
    _retire_audited(target, actor=actor, reason=reason)
    _blend_follow(target.algorithm, None, actor=actor)
    return target


@transaction.atomic
def model_version_retire(*, version: str, actor: str = "system", reason: str = "") -> ModelVersion:
    """Take a non-serving version out of use (the active one must be replaced or rolled back first)."""
    target = _locked(version)
    if target.status == ModelVersion.Status.ACTIVE:
        raise RegistryError(f"{version} is active: activate another version or roll back first")
    _retire_audited(target, actor=actor, reason=reason)
    return target


SHADOW_TOP_K_MAX = 50


@transaction.atomic
def shadow_config_set(
    *, version: str, sample_rate: float, top_k: int = 5, actor: str = "system"
) -> ShadowConfig:
    """Make ``version`` (a candidate or retired version, not an active one) the shadow: every web
    process loads it on its next poll and scores ``sample_rate`` of the requests a model served."""
    if not 0.0 < float(sample_rate) <= 1.0:
        raise RegistryError(f"sample rate must be in (0, 1], not {sample_rate!r}")
    if not 1 <= int(top_k) <= SHADOW_TOP_K_MAX:
        raise RegistryError(f"top-k must be between 1 and {SHADOW_TOP_K_MAX}, not {top_k!r}")
    target = _locked(version)
    if target.status == ModelVersion.Status.ACTIVE:
        raise RegistryError(f"{version} is already serving: shadow a candidate instead")
    config, _ = ShadowConfig.objects.update_or_create(
        pk=1,
        defaults={"version": target, "sample_rate": float(sample_rate), "top_k": int(top_k), "actor": actor},
    )
    return config


def shadow_config_clear() -> str | None:
    """Stop shadowing; returns the version that was shadowing (None when there was none)."""
    with transaction.atomic():
        config = ShadowConfig.objects.select_for_update().select_related("version").filter(pk=1).first()
        if config is None:
            return None
        version = config.version.version
        config.delete()
    return version

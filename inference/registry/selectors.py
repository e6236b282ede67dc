"""Reads of the registry. ``active_model_versions`` is what every web process polls (one cheap query)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.db.models import OuterRef, QuerySet, Subquery

from inference.conf import inference_setting
from inference.registry.models import ModelActivation, ModelVersion, ShadowConfig, TrainingRun


@dataclass(frozen=True, slots=True)
class ActiveVersion:
    algorithm: str
    version: str
    artifact_dir: Path
    # NDCG@5 on the validation slice (``ModelVersion.validation_score``): the chain tries the best first
    validation_score: float | None = None


def model_dir() -> Path:
    return Path(inference_setting("MODEL_DIR"))


def artifact_dir_for(*, artifact_path: str) -> Path:
    return model_dir() / artifact_path


def active_model_versions() -> dict[str, ActiveVersion]:
    """algorithm -> the active version (absent when an algorithm has none)."""
    rows = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list(
        "algorithm", "version", "artifact_path", "validation_score"
    )
    return {
        algorithm: ActiveVersion(
            algorithm=algorithm,
            version=version,
            artifact_dir=artifact_dir_for(artifact_path=path),
            validation_score=score,
        )
        for algorithm, version, path, score in rows
    }


@dataclass(frozen=True, slots=True)
class ShadowVersion:
    """The shadow as serving polls it (see ``ShadowConfig``)."""

    algorithm: str
    version: str
    artifact_dir: Path
    sample_rate: float
    top_k: int


def shadow_version() -> ShadowVersion | None:
    """The configured shadow, or None (one cheap query, polled beside ``active_model_versions``)."""
    row = (
        ShadowConfig.objects.filter(pk=1)
        .values_list(
            "version__algorithm", "version__version", "version__artifact_path", "sample_rate", "top_k"
        )
        .first()
    )
    if row is None:
        return None
    algorithm, version, path, rate, top_k = row
    return ShadowVersion(
        algorithm=algorithm,
        version=version,
        artifact_dir=artifact_dir_for(artifact_path=path),
        sample_rate=float(rate),
        top_k=int(top_k),
    )


def shadow_config_get() -> ShadowConfig | None:
    """The shadow row with its version (one joined query), for the dashboard."""
    return ShadowConfig.objects.select_related("version").filter(pk=1).first()


def model_version_active(*, algorithm: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(algorithm=algorithm, status=ModelVersion.Status.ACTIVE).first()


def model_version_rollback_target(*, algorithm: str) -> str | None:
    """The version a rollback of ``algorithm`` would serve again (the one active before the current
    one, as ``services.model_version_rollback`` picks it), or None when there is nothing to roll back to."""
    current = model_version_active(algorithm=algorithm)
    if current is None:
        return None
    entry = (
        ModelActivation.objects.filter(
            version=current, action__in=[ModelActivation.Action.ACTIVATE, ModelActivation.Action.ROLLBACK]
        )
        .exclude(previous=None)
        .select_related("previous")
        .first()
    )
    return entry.previous.version if entry is not None and entry.previous is not None else None


def model_versions_list(*, algorithm: str | None = None, status: str | None = None) -> QuerySet[ModelVersion]:
    """Versions newest first, each with ``stopped_because``: the reason of its latest retirement (None: never)."""
    retired = ModelActivation.objects.filter(version=OuterRef("pk"), action=ModelActivation.Action.RETIRE)
    queryset = ModelVersion.objects.annotate(
        stopped_because=Subquery(retired.order_by("-at", "-id").values("reason")[:1])
    )
    if algorithm:
        queryset = queryset.filter(algorithm=algorithm)
    if status:
        queryset = queryset.filter(status=status)
    return queryset


def training_runs_recent(*, limit: int = 20) -> QuerySet[TrainingRun]:
    return TrainingRun.objects.all()[:limit]


def training_run_get(*, run_id: int) -> TrainingRun | None:
    return TrainingRun.objects.filter(pk=run_id).first()

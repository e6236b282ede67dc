"""Registry services: register, activate, roll back, retire; one active version per algorithm."""

from __future__ import annotations

import pytest

from inference.registry import selectors, services
from inference.registry.models import ModelActivation, ModelVersion

pytestmark = pytest.mark.django_db


def register(version: str, algorithm: str = "gbdt") -> ModelVersion:
    return services.model_version_register(algorithm=algorithm, version=version, artifact_path=version)


def status(version: str) -> str:
    return ModelVersion.objects.get(version=version).status


def test_registered_version_is_a_candidate_and_not_served():
    register("gbdt-1")
    assert status("gbdt-1") == "candidate"
    assert selectors.active_model_versions() == {}


def test_activation_serves_the_version_and_retires_the_previous_one():
    register("gbdt-1")
    register("gbdt-2")
    register("neural-1", "neural")
    services.model_version_activate(version="gbdt-1")
    services.model_version_activate(version="neural-1")
    services.model_version_activate(version="gbdt-2")
    active = selectors.active_model_versions()
    assert {k: v.version for k, v in active.items()} == {"gbdt": "gbdt-2", "neural": "neural-1"}
    assert active["gbdt"].artifact_dir == selectors.model_dir() / "gbdt-2"
    assert status("gbdt-1") == "retired"
    audit = ModelActivation.objects.filter(algorithm="gbdt").first()
    assert (audit.version.version, audit.previous.version) == ("gbdt-2", "gbdt-1")


def test_rollback_serves_the_previously_active_version():
    for name in ("gbdt-1", "gbdt-2", "gbdt-3"):
        register(name)
        services.model_version_activate(version=name)
    back = services.model_version_rollback(algorithm="gbdt", actor="ops")
    assert back.version == "gbdt-2"
    assert selectors.model_version_active(algorithm="gbdt").version == "gbdt-2"
    assert status("gbdt-3") == "retired"
    assert ModelActivation.objects.first().action == "rollback"


def test_rollback_without_a_previous_version_is_refused():
    register("gbdt-1")
    with pytest.raises(services.RegistryError):
        services.model_version_rollback(algorithm="gbdt")
    services.model_version_activate(version="gbdt-1")
    with pytest.raises(services.RegistryError):
        services.model_version_rollback(algorithm="gbdt")
    assert status("gbdt-1") == "active"


def test_retire_refuses_the_active_version_and_retires_others():
    register("gbdt-1")
    register("gbdt-2")
    services.model_version_activate(version="gbdt-1")
    with pytest.raises(services.RegistryError):
        services.model_version_retire(version="gbdt-1")
    services.model_version_retire(version="gbdt-2")
    assert (status("gbdt-1"), status("gbdt-2")) == ("active", "retired")


def test_unknown_version_is_a_registry_error():
    with pytest.raises(services.RegistryError):
        services.model_version_activate(version="nope")


def test_database_refuses_two_active_versions_of_one_algorithm():
    from django.db import IntegrityError

    register("gbdt-1")
    register("gbdt-2")
    services.model_version_activate(version="gbdt-1")
    with pytest.raises(IntegrityError):
        ModelVersion.objects.filter(version="gbdt-2").update(status="active")


def test_version_names_say_algorithm_and_time():
    import re

    assert re.fullmatch(r"gbdt-\d{8}-\d{4}-[0-9a-f]{4}", services.model_version_name(algorithm="gbdt"))


def test_a_run_whose_figures_hold_nan_is_still_registered_with_those_figures_empty():
    """A metric over an empty slice is NaN; PostgreSQL's JSON refuses NaN, which used to fail the whole
    registration after training had finished."""
    metrics = {"results": {"model": {"ndcg@5": 0.31}}, "calibration": {"ece": float("nan"), "bins": [0.1, float("inf")]}}
    services.model_version_register(algorithm="gbdt", version="v-nan", artifact_path="x", metrics=metrics)
    stored = ModelVersion.objects.get(version="v-nan")
    assert stored.metrics["calibration"] == {"ece": None, "bins": [0.1, None]}
    assert stored.metrics["results"]["model"]["ndcg@5"] == 0.31 and stored.validation_score == 0.31

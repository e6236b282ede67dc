"""``manage.py models list|activate|rollback|retire``."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from inference.registry import services
from inference.registry.models import ModelVersion

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("models", *args, stdout=out)
    return out.getvalue()


def test_activate_rollback_retire_and_list():
    services.model_version_register(
        algorithm="gbdt",
        version="gbdt-1",
        artifact_path="gbdt-1",
        metrics={"results": {"model": {"ndcg@5": 0.81}, "popularity": {"ndcg@5": 0.77}}},
    )
    services.model_version_register(algorithm="gbdt", version="gbdt-2", artifact_path="gbdt-2")
    assert "activated gbdt-1" in run("activate", "gbdt-1")
    run("activate", "gbdt-2")
    assert "to gbdt-1" in run("rollback", "gbdt")
    assert "retired gbdt-2" in run("retire", "gbdt-2")
    listing = run("list")
    assert "gbdt-1" in listing and "0.810" in listing and "0.770" in listing
    assert ModelVersion.objects.get(version="gbdt-1").status == "active"


def test_errors_are_reported_as_command_errors():
    with pytest.raises(CommandError, match="no model version"):
        run("activate", "missing")
    with pytest.raises(CommandError, match="no active"):
        run("rollback", "neural")

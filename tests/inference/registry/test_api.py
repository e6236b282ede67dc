"""The staff registry API: list, activate, roll back; staff only."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from inference.registry import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model) -> APIClient:
    client = APIClient()
    client.force_login(django_user_model.objects.create_user(username="ops", password="x", is_staff=True))
    return client


@pytest.fixture
def versions() -> None:
    for name in ("gbdt-1", "gbdt-2"):
        services.model_version_register(algorithm="gbdt", version=name, artifact_path=name)


def test_staff_lists_activates_and_rolls_back(staff, versions):
    assert {row["version"] for row in staff.get("/api/v1/models/").json()} == {"gbdt-1", "gbdt-2"}
    assert staff.post("/api/v1/models/gbdt-1/activate").json()["status"] == "active"
    staff.post("/api/v1/models/gbdt-2/activate")
    response = staff.post("/api/v1/models/gbdt/rollback")
    assert response.status_code == 200
    assert response.json()["version"] == "gbdt-1"
    assert [r["version"] for r in staff.get("/api/v1/models/?status=active").json()] == ["gbdt-1"]


def test_unknown_version_and_impossible_rollback(staff, versions):
    assert staff.post("/api/v1/models/nope/activate").status_code == 404
    assert staff.post("/api/v1/models/neural/rollback").status_code == 409
    assert staff.post("/api/v1/models/svm/rollback").status_code == 400


def test_retiring_an_unknown_version_is_not_found_like_activating_one(staff, versions):
    """Retire answered 409 Conflict for a version that does not exist (activate: 404)."""
    response = staff.post("/api/v1/models/nope/retire")
    assert response.status_code == 404
    assert response.json() == {"errors": {"version": "no model version 'nope'"}}
    staff.post("/api/v1/models/gbdt-1/activate")
    assert staff.post("/api/v1/models/gbdt-1/retire").status_code == 409  # the active one: a conflict


def test_non_staff_and_service_tokens_are_refused(django_user_model, versions):
    from rest_framework.authtoken.models import Token

    assert APIClient().get("/api/v1/models/").status_code == 401
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=django_user_model.objects.create_user(username='svc')).key}"
    )
    assert client.get("/api/v1/models/").status_code == 403
    assert client.post("/api/v1/models/gbdt-1/activate").status_code == 403

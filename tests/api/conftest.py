"""API test fixtures: a predictor of test doubles installed as this process's predictor, clients."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inference.serving.predictor import Predictor, PredictorConfig
from inference.serving.runtime import predictor_install


class DoubleModel:
    def predict(self, features: dict, *, now: float, top: int) -> list[tuple[str, float]]:
        total = sum(features.values()) or 1.0
        return sorted(((c, v / total) for c, v in features.items()), key=lambda kv: -kv[1])[:top]


class DoubleFeatures:
    users = {"alice": {"sports": 3.0, "travel": 1.0}, "bob": {"news": 2.0}}

    def read(self, user_id: str, now: float | None = None) -> dict[str, float]:
        return dict(self.users.get(user_id, {}))

    def is_cold(self, features: dict) -> bool:
        return not features

    def empty(self) -> dict:
        return {}


class DoublePrior:
    version = "prior"

    def predict(self, features: dict | None, *, now: float, top: int) -> list[tuple[str, float]]:
        return [("news", 0.5), ("sports", 0.3), ("travel", 0.2)][:top]


@dataclass(frozen=True)
class Active:
    version: str
    artifact_dir: Path
    validation_score: float | None = None


@pytest.fixture
def served_models() -> dict[str, Active]:
    """The registry as the test predictor sees it; tests may add or remove entries."""
    return {"gbdt": Active("gbdt-test-1", Path("/nonexistent/gbdt-test-1"))}


@pytest.fixture
def predictor(served_models: dict[str, Active]):
    built = Predictor(
        features=DoubleFeatures(),
        prior=DoublePrior(),
        loader=lambda name, path: DoubleModel(),
        registry_reader=lambda: dict(served_models),
        config=PredictorConfig(poll_seconds=0),
    ).start(background=False)
    predictor_install(built)
    yield built
    predictor_install(None)


@pytest.fixture
def token_client(db, predictor) -> APIClient:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username="service-test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def staff_client(db, predictor) -> APIClient:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username="staff", password="x", is_staff=True)
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def roomy_budget(settings):
    """A budget no loaded machine misses: for tests about what the model answers, not the deadline
    (at the default 5 ms a busy CI host lets the prior answer instead)."""
    settings.INFERENCE = {**getattr(settings, "INFERENCE", {}), "BUDGET_MS": 2000.0}

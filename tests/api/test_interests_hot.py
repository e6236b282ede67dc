"""The interests hot path (inference/rest/hot.py): a client whose token the process remembers gets the same
answer as through DRF's dispatch, and everything else still gets DRF's own answers."""

from __future__ import annotations

import pytest
from rest_framework.views import APIView

pytestmark = pytest.mark.django_db


@pytest.fixture
def drf_dispatches(monkeypatch):
    """How many requests went through DRF's request handling (authentication, permissions, throttles)."""
    calls: list[str] = []
    initial = APIView.initial

    def counted(self, request, *args, **kwargs):
        calls.append(request.path)
        return initial(self, request, *args, **kwargs)

    monkeypatch.setattr(APIView, "initial", counted)
    return calls


def test_a_remembered_token_gets_the_same_answer_without_drf(token_client, drf_dispatches):
    first = token_client.get("/api/v1/users/alice/interests?top=2")  # checks the token, remembers it
    second = token_client.get("/api/v1/users/alice/interests?top=2")
    assert len(drf_dispatches) == 1  # the second was answered by the hot path
    assert (first.status_code, second.status_code) == (200, 200)
    body = second.json()
    assert {k: v for k, v in body.items() if k != "elapsed_ms"} == {
        k: v for k, v in first.json().items() if k != "elapsed_ms"}
    assert [c["category"] for c in body["categories"]] == ["sports", "travel"]
    for header in ("Content-Type", "Allow"):
        assert second[header] == first[header]
    assert second["Server-Timing"].startswith("features;dur=") and 'desc="gbdt"' in second["Server-Timing"]


@pytest.mark.parametrize("query", ["top=0", "top=5&top=6", "top=abc"])
def test_bad_parameters_of_a_remembered_client_get_drfs_400(token_client, query, drf_dispatches):
    token_client.get("/api/v1/users/alice/interests")
    response = token_client.get(f"/api/v1/users/alice/interests?{query}")
    assert response.status_code == 400 and "top" in response.json()["errors"]
    assert len(drf_dispatches) == 2


def test_a_remembered_client_over_its_rate_gets_drfs_429(token_client, monkeypatch, drf_dispatches):
    from inference.rest.throttling import InterestsRateThrottle, throttle_counters_reset

    monkeypatch.setattr(InterestsRateThrottle, "rate", "3/minute", raising=False)
    throttle_counters_reset()
    statuses = [token_client.get("/api/v1/users/alice/interests").status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
    assert "Retry-After" in token_client.get("/api/v1/users/alice/interests")


def test_a_malformed_or_unknown_token_is_refused_by_drf(predictor, token_client, drf_dispatches):
    from rest_framework.test import APIClient

    token_client.get("/api/v1/users/alice/interests")  # a valid token remembered: others are not
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert stranger.get("/api/v1/users/alice/interests").status_code == 401
    stranger.credentials(HTTP_AUTHORIZATION="Token")
    assert stranger.get("/api/v1/users/alice/interests").status_code == 401

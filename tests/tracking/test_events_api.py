"""POST /api/v1/events: the same schema, server to server, token auth."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from tracking_factories import make_event

from tracking.models import Event

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("embedded")]


@pytest.fixture
def token() -> str:
    user = get_user_model().objects.create_user("shop-backend", password="x")
    return Token.objects.create(user=user).key


def test_without_a_token_the_api_answers_401_and_stores_nothing() -> None:
    response = APIClient().post(
        "/api/v1/events", json.dumps({"events": [make_event()]}), content_type="application/json"
    )
    assert response.status_code == 401
    assert not Event.objects.exists()


def test_with_a_token_events_are_stored_like_collected_ones(token: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    event = make_event(type="conversion", properties={"value": 12.5})
    body = json.dumps({"events": [event, event, make_event(user_id=...)]})
    response = client.post(
        "/api/v1/events", body, content_type="application/json", HTTP_USER_AGENT="python-requests/2.32"
    )
    assert response.status_code == 202
    data = response.json()
    assert (data["accepted"], data["duplicate"]) == (1, 1)
    # no cookie fallback for server-to-server: a missing user_id is rejected
    assert [(r["index"], r["reason"]) for r in data["rejected"]] == [(2, "missing_field")]
    stored = Event.objects.get()
    # the sending server's User-Agent is not the visitor's: not stored, not a bot
    assert (stored.source, stored.is_bot, stored.user_agent, stored.ip) == ("api", False, "", "")


def test_api_body_that_is_not_json_answers_400(token: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = client.post("/api/v1/events", "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "invalid_json"


def test_the_schema_offers_only_the_json_body_the_endpoint_reads(token: str) -> None:
    """The OpenAPI schema listed form and multipart bodies, which the endpoint answers with a 400."""
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    body = schema["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]
    assert list(body) == ["application/json"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    form = client.post("/api/v1/events", {"events": "x"}, format="multipart")
    assert form.status_code == 400 and form.json()["error"] == "invalid_json"


def test_server_to_server_events_are_not_bounded_by_the_anonymous_quarantine_budget(
    token: str, settings: Any
) -> None:
    settings.TRACKING = {**settings.TRACKING, "QUARANTINE_BUDGET_ROWS": 1}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    bad_batch = {"events": [make_event(type="bad") for _ in range(5)]}
    for _ in range(3):
        assert client.post("/api/v1/events", bad_batch, format="json").status_code == 202

"""GET /api/v1/users/{user_id}/interests and POST /api/v1/interests/batch."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_token_client_gets_scored_categories_and_who_served(token_client, roomy_budget):
    response = token_client.get("/api/v1/users/alice/interests?top=2")
    assert response.status_code == 200
    body = response.json()
    assert [item["category"] for item in body["categories"]] == ["sports", "travel"]
    assert body["served_by"] == "gbdt"
    assert body["model_version"] == "gbdt-test-1"
    assert body["fallback_reason"] == "no_model"  # no neural version is active
    assert body["elapsed_ms"] >= 0
    assert "total;dur=" in response["Server-Timing"]
    assert "features;dur=" in response["Server-Timing"]


def test_unknown_user_gets_a_cold_start_answer_not_404(token_client):
    response = token_client.get("/api/v1/users/never-seen/interests")
    assert response.status_code == 200
    body = response.json()
    assert (body["served_by"], body["fallback_reason"]) == ("prior", "cold_start")
    assert body["categories"][0]["category"] == "news"
    # the answer says it knew nothing of the visitor and that the prior answered
    assert body["confidence"]["history"] == "cold" and body["confidence"]["history_events"] == 0
    assert body["confidence"]["from_prior"] is True


def test_a_model_without_a_calibration_answers_null_probabilities_and_says_so(token_client, roomy_budget):
    body = token_client.get("/api/v1/users/alice/interests?top=2").json()
    assert body["served_by"] == "gbdt", body
    assert [item["probability"] for item in body["categories"]] == [None, None]
    assert body["confidence"]["calibrated"] is False and body["confidence"]["from_prior"] is False


@pytest.mark.parametrize("top", ["0", "101", "abc", "2.5", "-1"])
def test_bad_top_is_a_400_naming_the_parameter(token_client, top):
    response = token_client.get(f"/api/v1/users/alice/interests?top={top}")
    assert response.status_code == 400
    assert "top" in response.json()["errors"]


def test_top_given_twice_is_a_400_not_one_of_them(token_client):
    response = token_client.get("/api/v1/users/alice/interests?top=5&top=6")
    assert response.status_code == 400
    assert response.json() == {"errors": {"top": "given more than once"}}
    assert len(token_client.get("/api/v1/users/alice/interests?top=3").json()["categories"]) <= 3


def test_overlong_user_id_is_a_400(token_client):
    response = token_client.get(f"/api/v1/users/{'u' * 200}/interests")
    assert response.status_code == 400
    assert "user_id" in response.json()["errors"]


def test_anonymous_request_is_refused_with_401(predictor):
    response = APIClient().get("/api/v1/users/alice/interests")
    assert response.status_code == 401


def test_signed_in_non_staff_user_is_refused_with_403(predictor, django_user_model):
    client = APIClient()
    client.force_login(django_user_model.objects.create_user(username="visitor", password="x"))
    assert client.get("/api/v1/users/alice/interests").status_code == 403


def test_staff_session_may_read_interests(staff_client):
    assert staff_client.get("/api/v1/users/alice/interests").status_code == 200


def test_batch_answers_each_user_in_order(token_client, roomy_budget):
    response = token_client.post(
        "/api/v1/interests/batch", {"user_ids": ["bob", "alice", "nobody"], "top": 1}, format="json"
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["user_id"] for r in results] == ["bob", "alice", "nobody"]
    assert [r["interests"]["categories"][0]["category"] for r in results] == ["news", "sports", "news"]
    assert results[2]["interests"]["fallback_reason"] == "cold_start"


@pytest.mark.parametrize(
    "body, parameter",
    [
        ({"user_ids": [], "top": 3}, "user_ids"),
        ({"user_ids": "alice"}, "user_ids"),
        ({"user_ids": ["alice", 7]}, "user_ids[1]"),
        ({"user_ids": ["alice"], "top": "many"}, "top"),
        ({"user_ids": ["u"] * 101}, "user_ids"),
    ],
)
def test_bad_batch_is_a_400_naming_the_parameter(token_client, body, parameter):
    response = token_client.post("/api/v1/interests/batch", body, format="json")
    assert response.status_code == 400
    assert parameter in response.json()["errors"]


def test_batch_requires_authentication(predictor):
    response = APIClient().post("/api/v1/interests/batch", {"user_ids": ["alice"]}, format="json")
    assert response.status_code == 401


def test_create_api_token_prints_a_working_token(predictor):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("create_api_token", "ads-frontend", stdout=out, stderr=StringIO())
    first = out.getvalue().strip()
    out = StringIO()
    call_command("create_api_token", "ads-frontend", stdout=out, stderr=StringIO())
    second = out.getvalue().strip()
    assert first != second  # rotated
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert client.get("/api/v1/users/alice/interests").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {second}")
    assert client.get("/api/v1/users/alice/interests").status_code == 200


def test_answers_are_json_whatever_the_client_accepts(token_client):
    # JSON-only endpoints skip Accept negotiation (inference/rest/negotiation.py): no 406, no HTML page
    for accept in ("text/html", "application/xml", "*/*"):
        response = token_client.get("/api/v1/users/alice/interests", HTTP_ACCEPT=accept)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert response.json()["categories"]


def test_a_batch_body_that_is_not_json_is_refused_as_unsupported(token_client):
    response = token_client.post("/api/v1/interests/batch", "user_ids=alice", content_type="text/plain")
    assert response.status_code == 415
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("top", ["%EF%BC%95", "+5", "%205", "5%20", "0005x", "1e1"])
def test_top_in_the_query_is_ascii_digits_only(token_client, top):
    response = token_client.get(f"/api/v1/users/alice/interests?top={top}")
    assert response.status_code == 400
    assert response.json() == {"errors": {"top": "must be an integer between 1 and 100"}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_ids": ["alice"], "top": "5"}, "top"),
        ({"user_ids": ["alice"], "top": 2.0}, "top"),
        ({"user_ids": ["alice"], "top": True}, "top"),
        ({"user_ids": ["alice"], "top": None}, "top"),
        ({"user_ids": ["alice"], "bogus": 1}, "bogus"),
        ({"user_ids": ["alice"], "top": 2, "users": ["bob"]}, "users"),
    ],
)
def test_batch_takes_exact_json_types_and_no_unknown_fields(token_client, body, field):
    response = token_client.post("/api/v1/interests/batch", json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == [field] and isinstance(errors[field], str)

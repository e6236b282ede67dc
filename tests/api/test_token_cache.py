"""Service tokens are checked against the database once per few seconds per process, not per request."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inference.rest.authentication import token_cache_clear

pytestmark = pytest.mark.django_db


@pytest.fixture
def service_token(predictor):
    from django.contrib.auth import get_user_model

    token_cache_clear()
    user = get_user_model().objects.create_user(username="service-cache")
    yield Token.objects.create(user=user)
    token_cache_clear()


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_valid_token_costs_no_query_on_the_next_request(service_token, django_assert_num_queries):
    client = _client(service_token.key)
    assert client.get("/api/v1/users/alice/interests").status_code == 200
    with django_assert_num_queries(0):
        assert client.get("/api/v1/users/alice/interests").status_code == 200


def test_an_invalid_token_is_refused_every_time(service_token):
    client = _client("0" * 40)
    assert [client.get("/api/v1/users/alice/interests").status_code for _ in range(3)] == [401, 401, 401]


def test_a_deleted_token_is_refused_once_the_remembered_tokens_are_dropped(service_token):
    client = _client(service_token.key)
    assert client.get("/api/v1/users/alice/interests").status_code == 200
    service_token.delete()
    token_cache_clear()
    assert client.get("/api/v1/users/alice/interests").status_code == 401


def test_the_same_key_is_accepted_as_a_bearer_token_and_a_wrong_one_is_refused(service_token):
    """``Authorization: Bearer <key>`` (what generated clients send) works as ``Token <key>`` does,
    on the fast interests path and through DRF; a wrong bearer key gets 401."""
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {service_token.key}")
    assert bearer.get("/api/v1/users/alice/interests?top=3").status_code == 200
    batch = bearer.post("/api/v1/interests/batch", {"user_ids": ["alice", "bob"], "top": 3}, format="json")
    assert batch.status_code == 200, batch.content
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Bearer " + "0" * 40)
    assert wrong.get("/api/v1/users/alice/interests").status_code == 401
    assert wrong.post("/api/v1/interests/batch", {"user_ids": ["alice"], "top": 3}, format="json").status_code == 401

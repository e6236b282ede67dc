"""PostgreSQL unreachable while ads are decided: a known API client still gets an answer (house ads when this
process has no catalog yet), an unknown token gets 503 with Retry-After; nothing answers 500. The fault
battery stops PostgreSQL for real (tests/faults); here every query fails as it does then."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.db.backends import utils
from django.test import Client
from rest_framework.authtoken.models import Token

from adsite.ads.catalog import catalog_invalidate
from inference.rest.authentication import token_cache_clear

pytestmark = pytest.mark.django_db


def _decide(token: str) -> Any:
    return Client(HTTP_AUTHORIZATION=f"Token {token}").post(
        "/api/v1/ads/decisions", json.dumps({"user_id": "reader", "placements": ["sidebar"]}),
        content_type="application/json",
    )


@pytest.fixture
def database_down(monkeypatch: Any) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    def down() -> None:
        for wrapper in (utils.CursorWrapper, utils.CursorDebugWrapper):
            monkeypatch.setattr(wrapper, "execute", refuse)
            monkeypatch.setattr(wrapper, "executemany", refuse)

    return down


def test_a_known_client_gets_house_ads_when_the_catalog_cannot_be_read(
    make_campaign: Any, interests: Any, fresh_ads_state: Any, database_down: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference.rest import authentication

    make_campaign()
    token_cache_clear()
    # a token is remembered as valid for no time at all: every later request asks the database again,
    # as it does once the 10 s are over
    monkeypatch.setattr(authentication, "TOKEN_CACHE_SECONDS", 0.0)
    key = Token.objects.create(user=get_user_model().objects.create_user("partner")).key
    assert _decide(key).status_code == 200  # the client's token was valid a moment ago
    catalog_invalidate()  # a process with no catalog yet: the first decision would build it
    database_down()
    response = _decide(key)
    assert response.status_code == 200
    (slot,) = response.json()["placements"]
    assert slot["house"] and slot["creative"] is None


def test_an_unknown_token_is_answered_503_with_retry_after(database_down: Any) -> None:
    token_cache_clear()
    database_down()
    response = _decide("0" * 40)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"

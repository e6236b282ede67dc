"""``create_api_token --staff``: a token a deployment script can use on the staff APIs; plain tokens cannot."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def _token(*args: str) -> str:
    out = StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def _models_status(token: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get("/api/v1/models/").status_code


def test_only_a_staff_token_reaches_the_model_registry():
    assert _models_status(_token("frontend")) == 403
    assert _models_status(_token("deployer", "--staff")) == 200


def test_rotating_without_staff_takes_the_right_away():
    assert _models_status(_token("deployer", "--staff")) == 200
    assert _models_status(_token("deployer")) == 403


def test_a_staff_service_user_still_cannot_log_in():
    from django.contrib.auth import get_user_model

    _token("deployer", "--staff")
    user = get_user_model().objects.get(username="service-deployer")
    assert user.is_staff and not user.has_usable_password()

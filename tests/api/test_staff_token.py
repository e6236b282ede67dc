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


@pytest.mark.parametrize("name", ["", "n" * 143, "my service"])
def test_a_name_no_username_can_hold_is_refused_before_anything_is_created(name):
    """An empty name made user 'service-'; a long one fails inside PostgreSQL (varchar(150))."""
    from django.contrib.auth import get_user_model
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="NAME must be"):
        _token(name)
    assert not get_user_model().objects.filter(username__startswith="service-").exists()
    assert len(_token("n" * 142)) == 40  # the longest that fits

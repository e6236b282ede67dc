"""The interests API fuzzed from its own OpenAPI schema (schemathesis): no 5xx, answers match the schema."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings

APP = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/schema/", APP).include(path_regex="interests")


@pytest.fixture
def token(db, predictor) -> str:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_user(username="fuzzer")
    return Token.objects.create(user=user).key


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_interests_api_honours_its_schema(case, token):
    case.call_and_validate(app=APP, headers={"Authorization": f"Token {token}"})

"""The interests API fuzzed from its own OpenAPI schema (schemathesis): no 5xx, answers match the schema."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings

APP = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/schema/", APP).include(path_regex="interests")


@pytest.fixture
def token(db, predictor):
    from django.contrib.auth import get_user_model
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from rest_framework.authtoken.models import Token

    # as Django's test Client does: requests through the raw WSGI app must not close the test's
    # connection (and with it the test transaction) at request start and end
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    user = get_user_model().objects.create_user(username="fuzzer")
    try:
        yield Token.objects.create(user=user).key
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_interests_api_honours_its_schema(case, token):
    case.call_and_validate(app=APP, headers={"Authorization": f"Token {token}"})

"""/metrics, /readyz and the OpenAPI schema and docs."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _sample(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_are_exposed_and_increase_with_predictions(token_client, roomy_budget):
    before = Client().get("/metrics").content.decode()
    for _ in range(3):
        token_client.get("/api/v1/users/alice/interests")
    token_client.get("/api/v1/users/nobody/interests")
    after = Client().get("/metrics").content.decode()
    assert (
        _sample(after, "inference_served_total", 'served_by="gbdt"')
        == _sample(before, "inference_served_total", 'served_by="gbdt"') + 3
    )
    assert _sample(after, "inference_fallbacks_total", 'reason="cold_start"') == (
        _sample(before, "inference_fallbacks_total", 'reason="cold_start"') + 1
    )
    assert 'inference_predict_seconds_bucket{le="0.005",model="gbdt",stage="model"}' in after
    assert 'inference_model_version_loaded{model="gbdt",version="gbdt-test-1"} 1.0' in after


def test_readyz_ok_when_database_answers_and_a_model_is_loaded(predictor):
    response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["models"]["loaded"] == {"gbdt": "gbdt-test-1"}


def test_readyz_degraded_without_any_model(predictor, served_models):
    served_models.clear()
    predictor.refresh()
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["models"]["ok"] is False


def test_schema_describes_the_interests_endpoint():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert "/api/v1/users/{user_id}/interests" in schema["paths"]
    assert "/api/v1/interests/batch" in schema["paths"]


def test_schema_names_each_response_for_what_it_is():
    """A generated client's classes are the schema's component names: ``ModelVersion`` and
    ``InterestsBatch``, like ``Interests`` and ``AdDecision``, not the serializers' ``...Output``."""
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    names = set(response.json()["components"]["schemas"])
    assert {"ModelVersion", "InterestsBatch", "Interests", "AdDecision"} <= names
    assert not [name for name in names if name.endswith("Output")]


def test_docs_page_loads_its_assets_from_our_static_files():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn.jsdelivr.net" not in page and "unpkg.com" not in page


@pytest.mark.requires_redis
def test_readyz_reports_redis_clock_offset_and_degrades_when_redis_is_down(predictor, private_redis, settings):
    import subprocess

    settings.REDIS_URL = private_redis
    ready = Client().get("/readyz")
    assert ready.status_code == 200
    # Redis's clock against this host's (the ad ledger's deadlines depend on it): one machine, one clock
    assert abs(ready.json()["checks"]["redis"]["clock_offset_ms"]) < 50
    port = private_redis.rsplit(":", 1)[1].split("/")[0]
    subprocess.run(
        ["redis-cli", "-p", port, "shutdown", "nosave"], check=False, capture_output=True, timeout=10
    )
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False


def test_favicon_is_served_so_pages_without_an_inline_icon_log_no_404(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")


def test_schema_generates_without_warnings_and_validates():
    """drf-spectacular warns when two views describe one component differently (the events endpoint's
    plain token class against the site's cached one both claimed 'tokenAuth'): a client generated from
    such a schema authenticates one of them wrongly."""
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


@pytest.mark.requires_redis
def test_readyz_checks_redis_through_the_fail_fast_guard(predictor, private_redis_server, settings):
    """A hung Redis costs /readyz one timeout; the next probe within the guard's cooldown answers at once,
    saying so, instead of waiting out another timeout."""
    from inference.redis_clients import guard_reset

    guard_reset()
    settings.REDIS_URL = private_redis_server.url
    private_redis_server.pause()
    try:
        first = Client().get("/readyz").json()["checks"]["redis"]
        second = Client().get("/readyz").json()["checks"]["redis"]
    finally:
        private_redis_server.resume()
        guard_reset()
    # the probe says only the error's type: a time-out first, then the guard's immediate refusal
    assert first["ok"] is False and "Timeout" in first["error"]
    assert second["ok"] is False and "ConnectionError" in second["error"]

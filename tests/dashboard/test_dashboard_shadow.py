"""Shadow mode from the dashboard: staff set and stop it (CSRF POST, audited), others are refused, and
the models page shows the shadow's agreement and latency from the metrics rollups."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_staff_start_and_stop_shadowing_and_both_are_audited(staff_client, seeded):
    from adsite.dashboard.models import AuditEntry
    from inference import api

    response = staff_client.post(
        "/dashboard/models/shadow",
        {"version": seeded["new"], "sample_percent": "25", "top_k": "3"},
        follow=True,
    )
    assert "now shadows 25% of model-served requests" in response.content.decode()
    setting = api.shadow_setting_get()
    assert setting is not None and (setting.version, setting.sample_rate, setting.top_k) == (
        seeded["new"],
        0.25,
        3,
    )
    assert setting.actor == "dashboard:staffer"
    entry = AuditEntry.objects.get(action="model.shadow")
    assert (entry.actor_name, entry.target, entry.ok) == ("staffer", seeded["new"], True)
    assert entry.details == {"sample_rate": 0.25, "top_k": 3, "algorithm": "gbdt"}

    html = staff_client.get("/dashboard/models/").content.decode()
    assert f"<code>{seeded['new']}</code> (gbdt, candidate) scores 25.0% of the requests" in html

    response = staff_client.post("/dashboard/models/shadow/stop", follow=True)
    assert "Shadow mode is off." in response.content.decode()
    assert api.shadow_setting_get() is None
    assert AuditEntry.objects.get(action="model.shadow_stop").details == {"version": seeded["new"]}


def test_shadowing_the_active_version_is_refused_and_audited_as_failed(staff_client, seeded):
    from adsite.dashboard.models import AuditEntry
    from inference import api

    response = staff_client.post(
        "/dashboard/models/shadow",
        {"version": seeded["old"], "sample_percent": "10", "top_k": "5"},
        follow=True,
    )
    assert "already serving" in response.content.decode()
    assert api.shadow_setting_get() is None
    assert AuditEntry.objects.get(action="model.shadow").ok is False


def test_an_out_of_range_sample_is_refused_before_anything_changes(staff_client, seeded):
    from adsite.dashboard.models import AuditEntry

    response = staff_client.post(
        "/dashboard/models/shadow",
        {"version": seeded["new"], "sample_percent": "150", "top_k": "5"},
        follow=True,
    )
    assert "Choose a version, a sample between" in response.content.decode()
    assert not AuditEntry.objects.filter(action="model.shadow").exists()


@pytest.mark.parametrize("url", ["/dashboard/models/shadow", "/dashboard/models/shadow/stop"])
def test_shadow_actions_refuse_non_staff_anonymous_and_missing_csrf(url, user_client, staff_user, seeded):
    from adsite.dashboard.models import AuditEntry
    from inference import api

    api.shadow_setting_set(version=seeded["new"], sample_rate=0.1)
    data = {"version": seeded["new"], "sample_percent": "50", "top_k": "5"}
    assert user_client.post(url, data).status_code == 403
    anonymous = Client().post(url, data)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/dashboard/login/")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff_user)
    assert strict.post(url, data).status_code == 403
    assert AuditEntry.objects.count() == 0
    setting = api.shadow_setting_get()
    assert setting is not None and setting.sample_rate == 0.1  # unchanged


def test_models_page_shows_the_shadows_agreement_and_latency_from_the_rollup(staff_client, seeded):
    """A real predictor (test doubles for features and models) serves with a shadow; the snapshot
    after it holds the shadow's counters; the page shows their hour and day figures."""
    from adsite.dashboard.rollup import metrics_snapshot_take
    from adsite.dashboard.selectors.models import models_page
    from inference.serving.deadline import Deadline
    from inference.serving.predictor import Predictor, PredictorConfig
    from tests.inference.serving.conftest import FakeFeatures, FakePrior, FakeRegistry
    from tests.inference.serving.test_shadow import FixedModel

    registry = FakeRegistry()
    registry.publish("gbdt", "gbdt-serving")  # serves [sports, travel] for alice
    shadow_version = f"gbdt-shadow-{uuid.uuid4().hex[:6]}"
    registry.models[shadow_version] = FixedModel(shadow_version, ["sports", "news"])  # top-2 overlap 1/2

    class Spec:
        algorithm, version, artifact_dir, sample_rate, top_k = (
            "gbdt",
            shadow_version,
            Path("/nonexistent") / shadow_version,
            1.0,
            2,
        )

    predictor = Predictor(
        features=FakeFeatures(users={"alice": {"sports": 3.0, "travel": 1.0, "news": 0.5}}),
        prior=FakePrior(),
        loader=registry.load,
        registry_reader=registry.read,
        config=PredictorConfig(poll_seconds=0),
        shadow_reader=lambda: Spec(),
    ).start(background=False)
    for _ in range(4):
        answer = predictor.predict("alice", deadline=Deadline(1000), top=3)
        assert (answer.served_by, answer.model_version) == ("gbdt", "gbdt-serving")
    metrics_snapshot_take()

    rows = [r for r in models_page()["shadow"]["results"] if r["version"] == shadow_version]
    assert [(r["window"], r["compared_with"], r["scored"], r["agreement"], r["top1"]) for r in rows] == [
        ("last hour", "gbdt", 4, 0.5, "100.0%"),
        ("last day", "gbdt", 4, 0.5, "100.0%"),
    ]
    assert rows[0]["p50_ms"] is not None and rows[0]["errors"] == {}

    html = staff_client.get("/dashboard/models/").content.decode()
    assert f'data-shadow-version="{shadow_version}"' in html
    assert "Agreement (top-k overlap)" in html and '<td class="num" data-agreement>0.5</td>' in html

"""Staff actions call the owning app's service and are written to the audit trail."""

from __future__ import annotations

import random

import pytest
from django.core.cache import cache
from django.test import override_settings

from adsite.dashboard.models import AuditEntry
from inference.events import EventRecord
from inference.registry.models import ModelVersion, TrainingRun
from tests.dashboard.conftest import VISITOR

pytestmark = pytest.mark.django_db
CATEGORIES = [f"c{i}" for i in range(5)]


def training_events(*, since=None, until=None, chunk_size=50_000):
    rng = random.Random(3)
    yield [
        EventRecord(
            user_id=f"u{(user := rng.randrange(25))}",
            ts=1.7e9 + n * 600,
            type="page_view",
            categories=(CATEGORIES[user % 5] if rng.random() < 0.7 else rng.choice(CATEGORIES),),
            item_id=str(n % 60),
        )
        for n in range(1000)
    ]


def training_categories():
    return list(CATEGORIES)


def test_activate_rollback_retire_are_done_and_audited(staff_client, seeded, staff_user):
    old, new = seeded["old"], seeded["new"]
    staff_client.post(f"/dashboard/models/{new}/activate")
    assert ModelVersion.objects.get(version=new).status == "active"
    staff_client.post("/dashboard/models/gbdt/rollback")
    assert ModelVersion.objects.get(version=old).status == "active"
    staff_client.post(f"/dashboard/models/{new}/retire")
    assert ModelVersion.objects.get(version=new).status == "retired"
    entries = list(AuditEntry.objects.order_by("id").values_list("actor_name", "action", "target", "ok"))
    assert entries == [
        ("staffer", "model.activate", new, True),
        ("staffer", "model.rollback", "gbdt", True),
        ("staffer", "model.retire", new, True),
    ]
    html = staff_client.get("/dashboard/audit/").content.decode()
    assert "model.rollback" in html and "staffer" in html


def test_a_refused_action_is_shown_and_audited_as_failed(staff_client, seeded):
    response = staff_client.post(f"/dashboard/models/{seeded['old']}/retire", follow=True)
    assert "is active" in response.content.decode()
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.ok) == ("model.retire", False)
    assert ModelVersion.objects.get(version=seeded["old"]).status == "active"


@pytest.mark.slow
def test_train_now_runs_the_training_task_and_the_run_appears(staff_client, tmp_path, settings, data_sources):
    cache.delete("inference:training:lock")
    data_sources(events=training_events, categories=training_categories)
    settings.DASHBOARD = {"TRAIN_IN_BACKGROUND": False}
    settings.CELERY_TASK_ALWAYS_EAGER = True  # services mode would enqueue it for a worker
    with override_settings(
        INFERENCE={
            "MODEL_DIR": str(tmp_path),
            "HYPERPARAMETERS": {"gbdt": {"objective": "binary", "max_rounds": 10}},
        }
    ):
        response = staff_client.post("/dashboard/models/train", {"algorithm": "gbdt", "activate": "never"})
    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert run.status == "succeeded" and run.percent == 100
    assert ModelVersion.objects.get(algorithm="gbdt").status == "candidate"
    assert set(ModelVersion.objects.values_list("status", flat=True)) == {"candidate"}  # activate=never
    assert (
        staff_client.get(f"/dashboard/models/training.json?id={run.pk}").json()["run"]["status"]
        == "succeeded"
    )
    entry = AuditEntry.objects.get()
    assert entry.action == "model.train" and entry.details["algorithm"] == "gbdt"
    # the audit trail shows the run's result beside its start: succeeded, the version it registered
    audit = staff_client.get("/dashboard/audit/").content.decode()
    versions = [o["version"] for o in TrainingRun.objects.get().outcome.values() if o.get("version")]
    assert 'data-training-result="succeeded"' in audit and versions and all(v in audit for v in versions)


def test_delete_visitor_needs_confirmation_then_removes_their_data(staff_client, seeded):
    from inference import api as inference_api
    from tracking.api import user_events_recent

    assert user_events_recent(user_id=VISITOR)
    assert "Type the visitor id" in staff_client.get(f"/dashboard/visitors/{VISITOR}/delete").content.decode()
    staff_client.post(f"/dashboard/visitors/{VISITOR}/delete", {"confirm": "wrong"})
    assert user_events_recent(user_id=VISITOR)  # not confirmed: nothing deleted
    response = staff_client.post(f"/dashboard/visitors/{VISITOR}/delete", {"confirm": VISITOR}, follow=True)
    assert "Deleted" in response.content.decode()
    assert user_events_recent(user_id=VISITOR) == []
    assert inference_api.user_interest_profile(VISITOR).events == 0
    assert user_events_recent(user_id="visitor-dash-2")  # others untouched
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.target, entry.details["events"]) == ("visitor.delete", VISITOR, 14)


def test_replay_after_a_fix_stores_the_event_and_marks_the_row(staff_client, seeded, settings):
    from tracking.api import quarantined_list, user_events_recent

    bad = next(row for row in quarantined_list() if "no_such_type" in row.payload)
    # the "fix": the rejected type becomes acceptable (here by patching the payload's own type)
    from tracking.models import QuarantinedEvent

    QuarantinedEvent.objects.filter(id=bad.id).update(payload=bad.payload.replace("no_such_type", "click"))
    before = len(user_events_recent(user_id=VISITOR, limit=100))
    response = staff_client.post("/dashboard/quality/replay", {"ids": [str(bad.id)]}, follow=True)
    assert "1 accepted" in response.content.decode()
    assert len(user_events_recent(user_id=VISITOR, limit=100)) == before + 1
    assert next(row for row in quarantined_list() if row.id == bad.id).replayed_at is not None
    # a second replay of the same row does nothing
    staff_client.post("/dashboard/quality/replay", {"ids": [str(bad.id)]})
    assert len(user_events_recent(user_id=VISITOR, limit=100)) == before + 1
    assert [e.action for e in AuditEntry.objects.order_by("id")] == ["quarantine.replay", "quarantine.replay"]


def test_roll_back_is_offered_only_when_a_version_served_before(staff_client, seeded):
    html = staff_client.get("/dashboard/models/").content.decode()
    assert 'data-rollback="gbdt"' not in html and "nothing served before" in html
    staff_client.post(f"/dashboard/models/{seeded['new']}/activate")
    html = staff_client.get("/dashboard/models/").content.decode()
    assert 'data-rollback="gbdt"' in html and f"Roll back to {seeded['old']}" in html


def test_audit_trail_filters_by_action_and_actor_and_pages(staff_client, staff_user, django_user_model):
    from adsite.dashboard.services import audit_entry_create

    other = django_user_model.objects.create_user("analyst", password="pw-analyst-1", is_staff=True)
    for i in range(60):
        audit_entry_create(actor=staff_user, action="campaign.pause", target=f"campaign {i}")
    for i in range(3):
        audit_entry_create(actor=other, action="model.activate", target=f"gbdt-{i}")
    first = staff_client.get("/dashboard/audit/").content.decode()
    assert first.count("data-audit-id=") == 50 and 'id="audit-older"' in first and 'id="audit-newer"' not in first
    oldest_on_first = min(e.id for e in AuditEntry.objects.order_by("-id")[:50])
    second = staff_client.get(f"/dashboard/audit/?before={oldest_on_first}").content.decode()
    assert second.count("data-audit-id=") == 13 and 'id="audit-older"' not in second and 'id="audit-newer"' in second
    models = staff_client.get("/dashboard/audit/?kind=model").content.decode()
    assert models.count("data-audit-id=") == 3 and "campaign.pause" not in models.split("<tbody>")[1]
    by_actor = staff_client.get("/dashboard/audit/?actor=analyst&q=gbdt-1").content.decode()
    assert by_actor.count("data-audit-id=") == 1 and "gbdt-1" in by_actor

"""Retention purge and per-visitor deletion leave nothing behind, and the ledger still reconciles."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from tracking.models import Event, QuarantinedEvent
from tracking.selectors import ledger_get

# Runs in both suites: embedded under `make test`, PostgreSQL + Redis under `make test-services`.
pytestmark = [pytest.mark.django_db, pytest.mark.services, pytest.mark.usefixtures("embedded")]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def _event(user_id: str, **extra: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": str(uuid.uuid4()),
        "type": "page_view",
        "user_id": user_id,
        "session_id": "s1",
        "ts": int(time.time() * 1000),
        "url": "http://127.0.0.1/articles/a/",
        "item_id": "a",
        "categories": ["travel"],
    }
    event.update(extra)
    return event


def _collect(client, events: list[dict[str, object]]) -> dict[str, object]:
    """Post each visitor's events from their own browser (a browser speaks only for its cookie's visitor)."""
    totals: dict[str, object] = {}
    for user in dict.fromkeys(str(e.get("user_id", "")) for e in events):
        client.cookies["adsite_uid"] = user
        mine = [e for e in events if str(e.get("user_id", "")) == user]
        response = client.post("/collect", data=json.dumps({"events": mine}), content_type="application/json",
                               HTTP_USER_AGENT=BROWSER)
        assert response.status_code == 202, response.content
        for key, value in response.json().items():
            totals[key] = totals.get(key, 0) + value if isinstance(value, int) else [*totals.get(key, []), *value]  # type: ignore[operator]
    return totals


def _reconciles() -> None:
    ledger = ledger_get()
    assert ledger["unaccounted"] == 0, ledger


def test_delete_user_removes_events_quarantine_and_features(client) -> None:
    from inference.store import feature_store

    _collect(client, [_event("alice"), _event("alice", categories=["music"]), _event("bob")])
    _collect(client, [_event("alice", unexpected_field=1)])  # rejected, kept in quarantine
    assert Event.objects.filter(user_id="alice").count() == 2
    assert QuarantinedEvent.objects.filter(user_id="alice").count() == 1
    assert feature_store().user_state("alice").sums, "the collect request updated alice's features"

    call_command("delete_user", "alice")

    assert not Event.objects.filter(user_id="alice").exists()
    assert not QuarantinedEvent.objects.filter(user_id="alice").exists()
    assert Event.objects.filter(user_id="bob").count() == 1
    assert not feature_store().user_state("alice").sums
    assert feature_store().user_state("bob").sums
    _reconciles()


def test_staff_api_deletes_a_visitor_and_refuses_everyone_else(client) -> None:
    _collect(client, [_event("carol"), _event("carol")])
    url = "/api/v1/users/carol/data"
    assert client.delete(url).status_code in {401, 403}
    plain = get_user_model().objects.create_user("plain", password="pw-123456789")
    client.force_login(plain)
    assert client.delete(url).status_code == 403
    assert Event.objects.filter(user_id="carol").count() == 2

    staff = get_user_model().objects.create_user("staff", password="pw-123456789", is_staff=True)
    client.force_login(staff)
    response = client.delete(url)
    assert response.status_code == 200
    assert response.json() == {"user_id": "carol", "events": 2, "quarantined": 0}
    assert not Event.objects.filter(user_id="carol").exists()
    _reconciles()


def test_retention_purge_removes_only_what_is_older_than_the_period(client) -> None:
    _collect(client, [_event("old"), _event("new")])
    _collect(client, [_event("old", type="nonsense")])
    old_time = timezone.now() - timedelta(days=400)
    Event.objects.filter(user_id="old").update(received_at=old_time)
    QuarantinedEvent.objects.filter(user_id="old").update(received_at=old_time)

    call_command("purge_events", days=395)

    assert not Event.objects.filter(user_id="old").exists()
    assert not QuarantinedEvent.objects.filter(user_id="old").exists()
    assert Event.objects.filter(user_id="new").count() == 1
    ledger = ledger_get()
    assert ledger["deleted"] == 1 and ledger["deleted_quarantine"] == 1
    _reconciles()


def test_scheduled_purge_task_runs_the_same_purge(client) -> None:
    from tracking.tasks import purge_expired

    _collect(client, [_event("ancient")])
    Event.objects.filter(user_id="ancient").update(received_at=timezone.now() - timedelta(days=1000))
    assert purge_expired.apply().get() == {"events": 1, "quarantined": 0}
    assert not Event.objects.filter(user_id="ancient").exists()


def test_deleting_a_visitor_also_drops_their_ad_explanations_clicks_and_frequency_counters(client, fresh_platform) -> None:
    import time

    from adsite.ads.accounting import Charge, MemoryLedger
    from adsite.ads.models import AdClick, DecisionExplanation

    book = fresh_platform.ledger
    assert isinstance(book, MemoryLedger)
    charge = Charge(campaign_id=1, creative_id=1, impression_price_micros=1000, daily_budget_micros=10**9,
                    total_budget_micros=10**9, cap_per_hour=1)
    now = time.time()
    assert book.impression_reserve(charge=charge, user_id="dave", now=now) == "ok"
    assert book.impression_reserve(charge=charge, user_id="dave", now=now) == "capped_hour"
    DecisionExplanation.objects.create(decision_id="d-1", user_id="dave", explanation={"why": "travel"})
    DecisionExplanation.objects.create(decision_id="d-2", user_id="erin", explanation={"why": "pets"})
    AdClick.objects.create(outcome="billed", user_id="dave", price_micros=500_000)
    AdClick.objects.create(outcome="billed", user_id="erin", price_micros=500_000)

    call_command("delete_user", "dave")

    assert list(DecisionExplanation.objects.values_list("user_id", flat=True)) == ["erin"]
    assert list(AdClick.objects.values_list("user_id", flat=True)) == ["erin"]
    assert book.impression_reserve(charge=charge, user_id="dave", now=now) == "ok"  # caps forgotten
    # what is invoiced names nobody and stays
    assert book.report_read(since=None, now=now)["1:spend"] == 2000

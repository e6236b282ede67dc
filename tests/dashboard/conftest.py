"""Fixtures for the dashboard tests: staff and non-staff clients, and a seeded site (events,
quarantine, registry versions, a training run) made through the apps' own services."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

VISITOR = "visitor-dash-1"


def make_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": "page_view",
        "user_id": VISITOR,
        "session_id": "s1",
        "ts": int(time.time() * 1000),
        "url": "https://example.org/a/one",
        "item_id": "one",
        "categories": ["technology"],
        "properties": {},
    }
    event.update(overrides)
    return event


@pytest.fixture
def staff_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("staffer", password="pw-staff-123", is_staff=True)


@pytest.fixture
def staff_client(staff_user: Any) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def user_client(django_user_model: Any) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_user("visitor", password="pw-user-123"))
    return client


@pytest.fixture
def embedded(settings: Any) -> None:
    settings.TRACKING = {**settings.TRACKING, "BUFFER": "database"}


def ingest(events: list[Any], *, bot: bool = False) -> Any:
    from tracking.api import IngestContext, events_ingest

    context = IngestContext(source="api", received_at=timezone.now(), is_bot=bot)
    return events_ingest(events=events, context=context)


@pytest.fixture
def seeded(db: None, embedded: None) -> dict[str, Any]:
    """Events of two visitors (one category mix each), bad input in quarantine, two registry versions
    (one active) and a finished training run; then one rollup."""
    from adsite.dashboard.rollup import rollup_refresh
    from inference.registry import services as registry
    from inference.registry.models import TrainingRun

    categories = ["technology", "sports", "travel"]
    events = [make_event(categories=[categories[i % 3]], item_id=f"i{i}") for i in range(12)]
    events += [make_event(user_id="visitor-dash-2", categories=["travel"], item_id=f"j{i}") for i in range(5)]
    events += [
        make_event(
            type="ad_impression", ad={"creative_id": "cr1", "campaign_id": "ca1", "placement_id": "top"}
        )
    ]
    events += [
        make_event(type="ad_click", ad={"creative_id": "cr1", "campaign_id": "ca1", "placement_id": "top"})
    ]
    events += [{"event_id": "not-a-uuid", "type": "page_view", "user_id": VISITOR}]  # quarantined
    events += [make_event(type="no_such_type")]  # quarantined
    ingest(events)
    ingest([make_event(user_id="crawler-1")], bot=True)
    metrics = {
        "slice": {"split": "time", "test_users": 40},
        "results": {
            "model": {
                "ndcg@5": 0.81,
                "recall@3": 0.9,
                "auc": 0.77,
                "per_category": {
                    "technology": {"users": 30, "hit@3": 0.93, "auc": 0.81},
                    "travel": {"users": 22, "hit@3": 0.77, "auc": 0.74},
                    "sports": {"users": 9, "hit@3": 0.44, "auc": 0.66},
                },
            },
            "popularity": {"ndcg@5": 0.7, "recall@3": 0.85, "auc": 0.6},
            "frequency": {"ndcg@5": 0.78, "recall@3": 0.88, "auc": 0.7},
        },
        "decision": "seeded",
    }
    now = timezone.now()
    old = registry.model_version_register(
        algorithm="gbdt",
        version="gbdt-seed-old",
        artifact_path="gbdt-seed-old",
        metrics=metrics,
        data_from=now - timedelta(days=3),
        data_to=now - timedelta(days=1),
    )
    new = registry.model_version_register(
        algorithm="gbdt",
        version="gbdt-seed-new",
        artifact_path="gbdt-seed-new",
        metrics={
            **metrics,
            "results": {
                **metrics["results"],
                "model": {
                    "ndcg@5": 0.83,
                    "recall@3": 0.91,
                    "auc": 0.79,
                    "per_category": {
                        "technology": {"users": 31, "hit@3": 0.9, "auc": 0.8},
                        "travel": {"users": 20, "hit@3": 0.85, "auc": 0.79},
                        "food": {"users": 4, "hit@3": 0.5, "auc": None},
                    },
                },
            },
        },
    )
    registry.model_version_activate(version=old.version)
    TrainingRun.objects.create(status="succeeded", stage="register", percent=100.0, message="done")
    rollup_refresh()
    return {"old": old.version, "new": new.version, "payload": json.dumps(events[-1])}

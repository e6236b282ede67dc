"""Events accepted while the feature store is unreachable reach the visitor's features later, once.

The services-mode tests run against the real PostgreSQL and Redis (``make test-services``); the
embedded ones run everywhere.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from tracking_factories import make_event, post_collect

from inference import api as inference_api
from inference.store import feature_store_reset
from tests.conftest import free_port
from tracking import features_backlog
from tracking.models import Event, FeatureBacklog
from tracking.tasks import features_catch_up


@pytest.fixture(autouse=True)
def fresh_outage_state() -> Iterator[None]:
    """Each test starts with the store answering (no outage running in this process)."""
    features_backlog.feature_store_recovered()
    feature_store_reset()
    yield
    features_backlog.feature_store_recovered()
    feature_store_reset()


@pytest.fixture
def real_predictor() -> Iterator[None]:
    """The process's real predictor (no trained model here: the prior), built afresh."""
    from inference.serving.runtime import predictor_install

    predictor_install(None)
    yield
    predictor_install(None)


@pytest.fixture
def api_client(db: None, real_predictor: None) -> APIClient:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username=f"backlog-{uuid.uuid4().hex[:8]}")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def interests(api_client: APIClient, user_id: str) -> dict[str, Any]:
    response = api_client.get(f"/api/v1/users/{user_id}/interests?top=3")
    assert response.status_code == 200
    return dict(response.json())


def page_views(user_id: str, n: int, category: str = "travel") -> list[dict[str, Any]]:
    return [make_event(user_id=user_id, categories=[category], item_id=f"{category}-{i}") for i in range(n)]


def ledger_json() -> dict[str, Any]:
    out = io.StringIO()
    call_command("ledger", "--json", stdout=out)
    return dict(json.loads(out.getvalue()))


def store_down(records: Any) -> None:
    raise inference_api.FeatureStoreUnavailable("feature store write failed: connection refused")


# --- services mode: Redis really unreachable, then back ------------------------------------------


@pytest.mark.requires_redis
@pytest.mark.requires_postgres
@pytest.mark.django_db
def test_events_collected_during_a_redis_outage_reach_the_interests_once_redis_is_back(
    client: Client, api_client: APIClient, redis_client: Any, settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.INFERENCE = {**settings.INFERENCE, "STORE": "redis", "STORE_POPULATION_CACHE_S": 0.0}
    redis_url = settings.REDIS_URL
    user = f"outage-{uuid.uuid4().hex[:8]}"
    # Redis gone: the buffer writes through to PostgreSQL, the feature store cannot be reached.
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    feature_store_reset()
    with caplog.at_level(logging.INFO, logger="tracking"):
        for event in page_views(user, 3):
            assert post_collect(client, [event]).json()["accepted"] == 1
    assert Event.objects.filter(user_id=user).count() == 3
    assert FeatureBacklog.objects.count() == 3
    # one WARNING for the outage, without a traceback; no ERROR per request
    outage = [r for r in caplog.records if r.getMessage() == "tracking.feature_store_unavailable"]
    assert len(outage) == 1 and outage[0].levelno == logging.WARNING and outage[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # the catch-up while the store is still down keeps the backlog
    assert features_catch_up(max_batches=10)["store_unavailable"] == 1
    assert FeatureBacklog.objects.count() == 3

    settings.REDIS_URL = redis_url  # Redis is back
    feature_store_reset()
    assert ledger_json()["feature_backlog"] == 3
    assert interests(api_client, user)["fallback_reason"] == "cold_start"

    assert features_catch_up(max_batches=10) == {"applied": 3, "waiting": 0, "dropped": 0, "store_unavailable": 0}
    assert ledger_json()["feature_backlog"] == 0
    answer = interests(api_client, user)
    assert answer["fallback_reason"] != "cold_start"
    assert inference_api.user_interest_profile(user).counts == (("travel", 3.0),)

    assert features_catch_up(max_batches=10)["applied"] == 0  # run twice: nothing applied twice
    assert inference_api.user_interest_profile(user).counts == (("travel", 3.0),)


@pytest.mark.requires_redis
@pytest.mark.requires_postgres
@pytest.mark.django_db
def test_buffered_events_wait_for_their_flush_before_the_catch_up_applies_them(
    client: Client, redis_client: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.INFERENCE = {**settings.INFERENCE, "STORE": "redis", "STORE_POPULATION_CACHE_S": 0.0}
    # a stream and ledger of its own: its Redis counts outlive the test's rolled-back rows, and in the
    # shared ledger they would leave a later test's ledger 2 events unaccounted
    settings.TRACKING = {**settings.TRACKING, "STREAM_KEY": f"test:events:{uuid.uuid4().hex}",
                         "LEDGER_KEY": f"test:ledger:{uuid.uuid4().hex}"}
    user = f"buffered-{uuid.uuid4().hex[:8]}"
    with monkeypatch.context() as patch:  # the buffer takes the events, the feature store fails
        patch.setattr(inference_api, "events_observe", store_down)
        assert post_collect(client, page_views(user, 2, "food")).json()["accepted"] == 2
    assert not Event.objects.exists() and FeatureBacklog.objects.count() == 2

    assert features_catch_up(max_batches=10)["waiting"] == 2  # not in the table yet
    assert FeatureBacklog.objects.count() == 2
    call_command("flush_events", stdout=io.StringIO())
    assert features_catch_up(max_batches=10)["applied"] == 2
    assert inference_api.user_interest_profile(user).counts == (("food", 2.0),)
    assert not FeatureBacklog.objects.exists()


# --- embedded mode -------------------------------------------------------------------------------


@pytest.fixture
def memory_store(settings: Any, embedded: None) -> None:
    settings.INFERENCE = {**settings.INFERENCE, "STORE": "memory", "STORE_POPULATION_CACHE_S": 0.0}
    feature_store_reset()


@pytest.mark.django_db
def test_embedded_collect_updates_the_in_process_store_and_backlogs_nothing(
    client: Client, memory_store: None
) -> None:
    user = f"embedded-{uuid.uuid4().hex[:8]}"
    post_collect(client, page_views(user, 2))
    assert not FeatureBacklog.objects.exists()
    assert inference_api.user_interest_profile(user).counts == (("travel", 2.0),)
    assert ledger_json()["feature_backlog"] == 0


@pytest.mark.django_db
def test_failed_update_is_backlogged_then_applied_once_in_time_order(
    client: Client, memory_store: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = f"late-{uuid.uuid4().hex[:8]}"
    events = page_views(user, 3)
    events[0]["ts"] -= 60_000  # sent last, happened first
    with monkeypatch.context() as patch:
        patch.setattr(inference_api, "events_observe", store_down)
        post_collect(client, events[1:])
        post_collect(client, events[:1])
    assert FeatureBacklog.objects.count() == 3
    assert (features_backlog.feature_store_outage() or {}).get("backlogged") == 3
    post_collect(client, page_views(user, 1))  # the store answers again: the outage is over
    assert features_backlog.feature_store_outage() is None

    applied: list[float] = []
    real = inference_api.events_observe
    monkeypatch.setattr(inference_api, "events_observe", lambda records: (applied.extend(r.ts for r in records), real(records)))
    assert features_catch_up()["applied"] == 3
    assert applied == sorted(applied) and applied[0] == events[0]["ts"] / 1000
    assert features_catch_up()["applied"] == 0
    assert inference_api.user_interest_profile(user).counts == (("travel", 4.0),)
    assert not FeatureBacklog.objects.exists()


@pytest.mark.django_db
def test_a_batch_applied_for_some_visitors_only_backlogs_the_others_and_counts_nobody_twice(
    client: Client, memory_store: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis Cluster master failing under a batch leaves it applied for the visitors on the other masters
    (the store says which): only the others' events wait for the catch-up, at collection and in the catch-up
    itself, so no visitor's features count an event twice."""
    reached, missed = f"reached-{uuid.uuid4().hex[:8]}", f"missed-{uuid.uuid4().hex[:8]}"
    real = inference_api.events_observe

    def cut(records: Any, **kwargs: Any) -> None:  # the store's answer when the master of ``missed`` failed
        real([r for r in records if r.user_id == reached], **kwargs)
        raise inference_api.FeatureStorePartlyApplied("a master failed", applied_users=frozenset({reached}))

    with monkeypatch.context() as patch:
        patch.setattr(inference_api, "events_observe", cut)
        features_backlog.events_observe_safe(
            [inference_api.EventRecord(reached, 1.0, "page_view", ("travel",)),
             inference_api.EventRecord(missed, 1.0, "page_view", ("travel",))],
            event_ids=[str(uuid.uuid4()), str(uuid.uuid4())],
        )
    assert FeatureBacklog.objects.count() == 1  # the missed visitor's event only

    # the catch-up cut the same way: the visitors it reached leave the backlog, the others wait
    FeatureBacklog.objects.all().delete()
    with monkeypatch.context() as patch:
        patch.setattr(inference_api, "events_observe", store_down)
        post_collect(client, page_views(reached, 2))
        post_collect(Client(), page_views(missed, 3))
    assert FeatureBacklog.objects.count() == 5
    with monkeypatch.context() as patch:
        patch.setattr(inference_api, "events_observe", cut)
        assert features_catch_up()["store_unavailable"]
    assert FeatureBacklog.objects.count() == 3
    assert features_catch_up()["applied"] == 3
    assert not FeatureBacklog.objects.exists()
    assert inference_api.user_interest_profile(reached).counts == (("travel", 3.0),)  # 1 + 2, none twice
    assert inference_api.user_interest_profile(missed).counts == (("travel", 3.0),)


@pytest.mark.django_db
def test_a_bug_in_the_feature_code_is_logged_with_its_traceback_not_backlogged(
    client: Client, memory_store: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(records: Any) -> None:
        raise RuntimeError("bad feature")

    monkeypatch.setattr(inference_api, "events_observe", broken)
    with caplog.at_level(logging.ERROR, logger="tracking"):
        assert post_collect(client, [make_event()]).status_code == 202
    assert not FeatureBacklog.objects.exists()
    assert [r.exc_info is not None for r in caplog.records if r.getMessage() == "tracking.events_observe_failed"] == [True]


@pytest.mark.django_db
def test_backlogged_event_that_never_reached_the_table_is_dropped_after_the_grace_period(memory_store: None) -> None:
    now = timezone.now()
    FeatureBacklog.objects.bulk_create(
        [
            FeatureBacklog(event_id=uuid.uuid4(), ts=now, recorded_at=now - timedelta(days=2)),
            FeatureBacklog(event_id=uuid.uuid4(), ts=now, recorded_at=now),
        ]
    )
    result = features_catch_up()
    assert (result["applied"], result["dropped"], result["waiting"]) == (0, 1, 1)
    assert FeatureBacklog.objects.count() == 1


def test_quality_page_shows_the_feature_backlog(admin_client: Client) -> None:
    now = timezone.now()
    FeatureBacklog.objects.create(event_id=uuid.uuid4(), ts=now, recorded_at=now)
    response = admin_client.get("/dashboard/quality/")
    assert response.status_code == 200
    assert b'id="feature-backlog">1<' in response.content


@pytest.mark.django_db
def test_a_full_rebuild_empties_the_backlog_so_no_event_counts_twice(
    client: Client, memory_store: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = f"rebuilt-{uuid.uuid4().hex[:8]}"
    with monkeypatch.context() as patch:
        patch.setattr(inference_api, "events_observe", store_down)
        post_collect(client, page_views(user, 3))
    assert FeatureBacklog.objects.count() == 3
    call_command("features_rebuild", stdout=io.StringIO())  # replays every stored event, these 3 included
    assert not FeatureBacklog.objects.exists()
    assert features_catch_up()["applied"] == 0
    assert inference_api.user_interest_profile(user).counts == (("travel", 3.0),)

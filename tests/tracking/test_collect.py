"""POST /collect (embedded path): counts, dedupe, quarantine, bots, privacy, identity, inference hand-off."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tracking_factories import BOT_UA, MOBILE_UA, make_event, post_collect

from tracking.models import Event, LedgerCounter, QuarantinedEvent
from tracking.selectors import ledger_get

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("embedded")]


def test_batch_is_accepted_and_stored_with_server_receive_time(client: Client) -> None:
    events = [make_event(), make_event(type="click")]
    response = post_collect(client, events)
    assert response.status_code == 202
    assert response.json() == {"accepted": 2, "duplicate": 0, "rejected": [], "dropped_for_privacy": 0}
    stored = Event.objects.get(event_id=events[0]["event_id"])
    assert stored.received_at is not None and stored.source == "tracker"
    assert stored.categories == ["technology"]


def test_json_content_type_is_accepted_too(client: Client) -> None:
    body = json.dumps({"events": [make_event()]})
    client.cookies["adsite_uid"] = "visitor-1"
    response = client.post("/collect", body, content_type="application/json", HTTP_USER_AGENT=MOBILE_UA)
    assert response.status_code == 202 and response.json()["accepted"] == 1


def test_duplicates_within_and_across_batches_are_stored_and_counted_once(client: Client) -> None:
    event = make_event()
    first = post_collect(client, [event, event]).json()
    second = post_collect(client, [event, make_event()]).json()
    assert (first["accepted"], first["duplicate"]) == (1, 1)
    assert (second["accepted"], second["duplicate"]) == (1, 1)
    assert Event.objects.filter(event_id=event["event_id"]).count() == 1
    assert LedgerCounter.objects.get(name="duplicates").value == 2


def test_bad_events_are_rejected_per_event_and_quarantined(client: Client) -> None:
    good = make_event()
    bad = make_event(user_id="visitor-9", type="purchase")
    response = post_collect(client, [good, bad, "junk"])
    body = response.json()
    assert response.status_code == 202
    assert body["accepted"] == 1
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [
        (1, "invalid_event_type"),
        (2, "not_an_object"),
    ]
    row = QuarantinedEvent.objects.get(batch_index=1)
    assert row.reason == "invalid_event_type"
    assert row.user_id == "visitor-9"
    assert json.loads(row.payload) == bad
    assert row.detail


def test_body_that_is_not_json_answers_400_and_is_kept(client: Client) -> None:
    response = post_collect(client, body=b'{"events": [oops')
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
    row = QuarantinedEvent.objects.get()
    assert (row.reason, row.payload, row.payload_bytes) == ("invalid_json", '{"events": [oops', 16)


@pytest.mark.parametrize(
    "body", [b'{"events": {}}', b"[]", b'{"events": [], "more": 1}', b"NaN", b'{"events": [1e999]}']
)
def test_body_that_is_not_a_batch_answers_400_and_is_kept(client: Client, body: bytes) -> None:
    response = post_collect(client, body=body)
    assert response.status_code == 400
    assert QuarantinedEvent.objects.get().reason == response.json()["error"]


def test_oversized_body_answers_413_and_keeps_its_start_and_size(client: Client, settings: Any) -> None:
    settings.TRACKING = {**settings.TRACKING, "MAX_BODY_BYTES": 1000}
    body = json.dumps({"events": [make_event(properties={"x": "y" * 1500})]})
    response = post_collect(client, body=body)
    assert response.status_code == 413
    row = QuarantinedEvent.objects.get()
    assert row.reason == "body_too_large"
    assert row.payload_bytes == len(body)
    assert body.startswith(row.payload) and 0 < len(row.payload) <= 1000
    assert not Event.objects.exists()


def test_crawler_events_are_kept_flagged_and_not_sent_to_inference(client: Client, observed: Any) -> None:
    post_collect(client, [make_event()], ua=BOT_UA)
    assert Event.objects.get().is_bot is True
    assert observed.records == []


def test_accepted_events_reach_inference_once_with_device_and_engagement(
    client: Client, observed: Any
) -> None:
    ping = make_event(type="page_ping", properties={"engaged_ms": 15000})
    ad = make_event(
        type="ad_impression", ad={"creative_id": "cr-1", "campaign_id": "ca-1", "placement": "top"}
    )
    post_collect(client, [ping, ad], ua=MOBILE_UA)
    post_collect(client, [ping])  # a retry: a duplicate is not observed again
    assert len(observed.records) == 2
    ping_record = next(r for r in observed.records if r.type == "page_ping")
    ad_record = next(r for r in observed.records if r.type == "ad_impression")
    assert (ping_record.engaged_ms, ping_record.device) == (15000, "mobile")
    assert (ad_record.creative_id, ad_record.campaign_id) == ("cr-1", "ca-1")


def test_failure_in_inference_does_not_fail_collection(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference import api as inference_api

    def broken(records: Any) -> None:
        raise RuntimeError("feature store down")

    monkeypatch.setattr(inference_api, "events_observe", broken)
    response = post_collect(client, [make_event()])
    assert response.status_code == 202 and Event.objects.count() == 1


@pytest.mark.parametrize("headers", [{"HTTP_DNT": "1"}, {"HTTP_SEC_GPC": "1"}])
def test_do_not_track_and_gpc_store_nothing(client: Client, headers: dict[str, str]) -> None:
    response = post_collect(client, [make_event(), make_event(type="bogus")], **headers)
    assert response.status_code == 202
    assert response.json()["dropped_for_privacy"] == 2
    assert not Event.objects.exists() and not QuarantinedEvent.objects.exists()


def test_consent_required_stores_only_with_the_consent_cookie(client: Client, settings: Any) -> None:
    settings.TRACKING = {**settings.TRACKING, "CONSENT_REQUIRED": True}
    assert post_collect(client, [make_event()]).json()["dropped_for_privacy"] == 1
    assert not Event.objects.exists()
    client.cookies["adsite_consent"] = "granted"
    assert post_collect(client, [make_event()]).json()["accepted"] == 1


def test_ip_is_stored_truncated(client: Client) -> None:
    post_collect(client, [make_event()], REMOTE_ADDR="203.0.113.77")
    post_collect(client, [make_event()], REMOTE_ADDR="2001:db8:abcd:12:1:2:3:4")
    assert set(Event.objects.values_list("ip", flat=True)) == {"203.0.113.0", "2001:db8:abcd::"}


def test_forwarded_for_is_honoured_only_behind_a_trusted_proxy(client: Client, settings: Any) -> None:
    post_collect(client, [make_event()], REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.9")
    settings.TRACKING = {**settings.TRACKING, "TRUST_X_FORWARDED_FOR": True}
    post_collect(client, [make_event()], REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.9")
    assert list(Event.objects.order_by("id").values_list("ip", flat=True)) == ["10.0.0.0", "198.51.100.0"]


def test_event_without_user_id_takes_the_visitor_cookie(client: Client) -> None:
    client.cookies["adsite_uid"] = "cookie-visitor"
    post_collect(client, [make_event(user_id=...)])
    assert Event.objects.get().user_id == "cookie-visitor"


# --- never a 5xx because of what a client sent ------------------------------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
fuzz_events = st.one_of(
    json_values,
    st.builds(
        lambda base, extra: {**base, **extra},
        st.builds(make_event),
        st.dictionaries(
            st.sampled_from(["ts", "type", "categories", "ad", "properties", "user_id", "url", "x"]),
            json_values,
        ),
    ),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=st.lists(fuzz_events, max_size=5))
def test_fuzzed_events_never_fail_and_every_rejection_is_quarantined(
    client: Client, events: list[Any]
) -> None:
    before = QuarantinedEvent.objects.count()
    response = post_collect(client, body=json.dumps({"events": events}))
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] + body["duplicate"] + len(body["rejected"]) == len(events)
    assert QuarantinedEvent.objects.count() - before == len(body["rejected"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_fuzzed_bodies_never_answer_5xx(client: Client, body: bytes) -> None:
    response = post_collect(client, body=body)
    assert response.status_code in (202, 400)


def test_page_view_rendered_by_the_server_and_sent_by_the_tracker_is_one_event(
    client: Client, rf: Any
) -> None:
    from tracking.api import page_view_record_server

    page_view_id = uuid.uuid4()
    request = rf.get("/a/one", HTTP_USER_AGENT=MOBILE_UA)
    request.COOKIES["adsite_uid"] = "visitor-7"
    page_view_record_server(
        request=request,
        event_id=page_view_id,
        url="https://e.org/a/one",
        item_id="one",
        categories=["technology", "Not A Slug"],
    )
    response = post_collect(client, [make_event(event_id=str(page_view_id), user_id="visitor-7")])
    assert response.json()["duplicate"] == 1
    stored = Event.objects.get()
    assert (stored.source, stored.user_id, stored.categories) == ("server", "visitor-7", ["technology"])


@pytest.mark.parametrize("headers", [{"HTTP_DNT": "1"}, {"HTTP_SEC_GPC": "1"}])
def test_server_page_view_honours_dnt_and_gpc(rf: Any, headers: dict[str, str]) -> None:
    from tracking.api import page_view_record_server

    request = rf.get("/", HTTP_USER_AGENT=MOBILE_UA, **headers)
    page_view_record_server(
        request=request, event_id=uuid.uuid4(), url="https://e.org/", item_id="", categories=[]
    )
    assert not Event.objects.exists()


def test_a_cross_site_beacon_cannot_write_for_another_visitor(client: Client, observed: Any) -> None:
    """``navigator.sendBeacon`` from another site: text/plain, no cookie of ours (SameSite=Lax), naming a
    victim's visitor id; and a script with its own cookie naming the victim. Nothing reaches the victim."""
    from tracking.models import Event

    forged = [make_event(user_id="victim", type="ad_click", ad={"creative_id": "1"}), make_event(user_id="victim")]
    response = client.post("/collect", json.dumps({"events": forged}), content_type="text/plain",
                           HTTP_USER_AGENT=MOBILE_UA, HTTP_ORIGIN="https://evil.example")
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 0 and {r["reason"] for r in body["rejected"]} == {"no_identity_cookie"}
    client.cookies["adsite_uid"] = "attacker"
    body = post_collect(client, [make_event(user_id="victim")]).json()
    assert body["accepted"] == 0 and body["rejected"][0]["reason"] == "user_id_mismatch"
    assert not Event.objects.filter(user_id="victim").exists()
    assert not [r for r in observed.records if r.user_id == "victim"]
    # the attacker's own events, named or not, are theirs
    assert post_collect(client, [make_event(user_id="attacker"), make_event(user_id=...)]).json()["accepted"] == 2


# --- what one client can make the site keep in quarantine -------------------------------------------
def test_garbage_beyond_the_quarantine_budget_answers_429_with_retry_after_and_stores_nothing(
    client: Client, settings: Any
) -> None:
    settings.TRACKING = {**settings.TRACKING, "QUARANTINE_BUDGET_BYTES": 20_000, "QUARANTINE_BUDGET_ROWS": 1_000}
    garbage = b"{" + b"x" * 6_000  # not JSON: kept whole in quarantine (about 6 KB a request)
    statuses = [post_collect(client, body=garbage).status_code for _ in range(6)]
    assert statuses == [400, 400, 400, 429, 429, 429]
    refused = post_collect(client, body=garbage)
    assert refused.json()["error"] == "quarantine_budget_spent"
    assert 1 <= int(refused["Retry-After"]) <= 600
    assert QuarantinedEvent.objects.count() == 3  # what was kept before the budget ran out

    # a batch with a rejected event is refused whole (nothing stored, the tracker retries it) ...
    good, bad = make_event(), make_event(type="bad")
    assert post_collect(client, [good, bad]).status_code == 429
    assert not Event.objects.exists()
    # ... while a batch without rejections from the same address is accepted as ever
    assert post_collect(client, [good]).json()["accepted"] == 1
    # another address has a budget of its own
    other = post_collect(client, body=garbage, REMOTE_ADDR="198.51.100.7")
    assert other.status_code == 400
    ledger = ledger_get()
    assert ledger["unaccounted"] == 0


def test_the_quarantine_budget_still_holds_while_redis_is_down(client: Client, settings: Any) -> None:
    """The budget counts with the site's one limiter: with Redis unreachable it counts in this process
    instead of letting every request through (a Redis outage must not unbound storage)."""
    from inference.rest.throttling import throttle_counters_reset

    dead = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    settings.REDIS_URL = dead
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": dead,
                                   "OPTIONS": {"socket_timeout": 0.2, "socket_connect_timeout": 0.2}}}
    throttle_counters_reset()
    settings.TRACKING = {**settings.TRACKING, "QUARANTINE_BUDGET_BYTES": 20_000, "QUARANTINE_BUDGET_ROWS": 1_000}
    garbage = b"{" + b"x" * 6_000
    statuses = [post_collect(client, body=garbage).status_code for _ in range(5)]
    assert statuses == [400, 400, 400, 429, 429]
    assert QuarantinedEvent.objects.count() == 3
    throttle_counters_reset()


def test_rejected_events_count_against_the_row_budget(client: Client, settings: Any) -> None:
    settings.TRACKING = {**settings.TRACKING, "QUARANTINE_BUDGET_ROWS": 10}
    bad_batch = [make_event(type="bad") for _ in range(6)]
    assert post_collect(client, bad_batch).status_code == 202
    assert post_collect(client, bad_batch).status_code == 429
    assert QuarantinedEvent.objects.count() == 6


"""tracking.schema: one raw event in, a normalized event or a reason out; never an exception."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tracking_factories import make_event

from tracking.schema import Limits, Rejection, ValidEvent, event_validate

NOW_MS = int(time.time() * 1000)
LIMITS = Limits(now_ms=NOW_MS, max_age_ms=30 * 86_400_000)


def validate(raw: Any, **kwargs: Any) -> ValidEvent | Rejection:
    return event_validate(raw, limits=LIMITS, **kwargs)


def test_valid_event_is_normalized() -> None:
    raw = make_event(event_id="6F1C2A3E-5B7D-4C8E-9F00-112233445566", categories=["sports", "sports", "news"])
    event = validate(raw)
    assert isinstance(event, ValidEvent)
    assert event.event_id == "6f1c2a3e-5b7d-4c8e-9f00-112233445566"
    assert event.categories == ("sports", "news")
    assert event.ts_ms == raw["ts"]


def test_iso_timestamp_is_accepted_and_naive_means_utc() -> None:
    limits = Limits(now_ms=1_767_400_000_000)
    event = event_validate(make_event(ts="2026-01-02T03:04:05Z"), limits=limits)
    naive = event_validate(make_event(ts="2026-01-02T03:04:05"), limits=limits)
    assert isinstance(event, ValidEvent) and isinstance(naive, ValidEvent)
    assert event.ts_ms == naive.ts_ms == 1_767_323_045_000


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"extra": 1}, "unknown_field"),
        ({"event_id": ...}, "missing_field"),
        ({"event_id": "not-a-uuid"}, "invalid_event_id"),
        ({"event_id": 5}, "invalid_type"),
        ({"type": "purchase"}, "invalid_event_type"),
        ({"type": ...}, "missing_field"),
        ({"user_id": ...}, "missing_field"),
        ({"user_id": 42}, "invalid_type"),
        ({"user_id": "x" * 65}, "value_too_long"),
        ({"url": "https://e.org/" + "a" * 2048}, "value_too_long"),
        ({"url": "bad\x00url"}, "invalid_string"),
        ({"item_id": "\ud800"}, "invalid_string"),
        ({"ts": ...}, "missing_field"),
        ({"ts": True}, "invalid_type"),
        ({"ts": "yesterday"}, "invalid_ts"),
        ({"ts": 1_700_000_000}, "ts_too_old"),  # seconds sent as milliseconds: 1970
        ({"ts": NOW_MS - 31 * 86_400_000}, "ts_too_old"),
        ({"ts": NOW_MS + 2 * 86_400_000}, "ts_in_future"),
        ({"ts": float("nan")}, "invalid_ts"),
        ({"categories": "sports"}, "invalid_type"),
        ({"categories": ["Sports Cars"]}, "invalid_category"),
        ({"categories": [f"c{i}" for i in range(21)]}, "too_many_categories"),
        ({"type": "ad_click"}, "missing_ad"),
        ({"type": "ad_impression", "ad": {"campaign_id": "c"}}, "missing_ad"),
        ({"type": "ad_impression", "ad": {"creative_id": "x", "price": 1}}, "invalid_ad"),
        ({"ad": "creative"}, "invalid_ad"),
        ({"properties": []}, "invalid_type"),
        ({"properties": {"blob": "x" * 3000}}, "properties_too_large"),
        ({"type": "page_ping", "properties": {"engaged_ms": -5}}, "invalid_properties"),
        ({"properties": {"bad": "\ud800"}}, "invalid_properties"),
        ({"properties": {"nul": "\x00"}}, "invalid_string"),
    ],
)
def test_bad_event_is_rejected_with_reason(overrides: dict[str, Any], reason: str) -> None:
    outcome = validate(make_event(**overrides))
    assert isinstance(outcome, Rejection)
    assert outcome.reason == reason
    assert outcome.detail


def test_not_an_object_is_rejected() -> None:
    assert validate(["event"]) == Rejection("not_an_object", "an event must be a JSON object")


def test_fallback_user_id_fills_a_missing_user_id() -> None:
    event = validate(make_event(user_id=...), fallback_user_id="cookie-id")
    assert isinstance(event, ValidEvent) and event.user_id == "cookie-id"
    own = validate(make_event(user_id="own-id"), fallback_user_id="cookie-id")
    assert isinstance(own, ValidEvent) and own.user_id == "own-id"


def test_ad_event_keeps_its_ad_and_placement_id_is_an_alias() -> None:
    event = validate(
        make_event(type="ad_click", ad={"creative_id": "cr1", "campaign_id": "ca1", "placement_id": "top"})
    )
    assert isinstance(event, ValidEvent)
    assert event.ad == {"creative_id": "cr1", "campaign_id": "ca1", "placement": "top"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
field_values = st.one_of(
    json_values,
    st.sampled_from(["page_view", "ad_click", "page_ping", "2026-01-01T00:00:00Z", "sports", ""]),
    st.integers(min_value=NOW_MS - 10**11, max_value=NOW_MS + 10**11),
)
event_dicts = st.dictionaries(
    st.sampled_from(
        [
            "event_id",
            "type",
            "user_id",
            "session_id",
            "ts",
            "url",
            "referrer",
            "item_id",
            "categories",
            "ad",
            "properties",
            "other",
        ]
    ),
    field_values,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(json_values, event_dicts, event_dicts.map(lambda extra: {**make_event(), **extra})))
def test_any_input_gives_an_event_or_a_reason(raw: Any) -> None:
    outcome = validate(raw)
    assert isinstance(outcome, ValidEvent | Rejection)
    if isinstance(outcome, Rejection):
        assert outcome.reason and outcome.detail
    else:
        assert outcome.type in {"page_view", "page_ping", "click", "ad_impression", "ad_click", "conversion"}
        outcome.user_id.encode("utf-8")

"""tracking.schema: one raw event in, a normalized event or a reason out; never an exception."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tracking_factories import make_event

from tracking import schema
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
        ({"user_id": "a/b"}, "invalid_user_id"),
        ({"user_id": "a b"}, "invalid_user_id"),
        ({"user_id": "visitor\n"}, "invalid_user_id"),
        ({"user_id": "tab\there"}, "invalid_user_id"),
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


def test_an_unknown_ad_field_is_named_with_the_fields_an_ad_takes() -> None:
    """A sender who writes ``ad.creative`` (not ``ad.creative_id``) learns which field and what to send."""
    outcome = validate(make_event(type="ad_impression", ad={"creative": "cr1", "placement": "top"}))
    assert outcome == Rejection(
        "invalid_ad", "unknown field 'ad.creative' (an ad takes campaign_id, creative_id, placement, placement_id, serve_id)"
    )
    long_name = validate(make_event(ad={"x" * 500: "v"}))
    assert isinstance(long_name, Rejection) and len(long_name.detail) < 150


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


# --- The inline branches of _validate against the helpers alone ----------------------------------


def _validate_plain(raw: object, *, limits: Limits, fallback_user_id: str) -> ValidEvent:
    """The checks of ``schema._validate`` through its field helpers only (no inline branches): the
    reference the inline branches are compared with."""
    s = schema
    if not isinstance(raw, dict):
        raise s._Reject(s.NOT_AN_OBJECT, "an event must be a JSON object")
    unknown = [key for key in raw if key not in s.FIELDS]
    if unknown:
        name = unknown[0] if isinstance(unknown[0], str) else "?"
        name = name[:40] if s._clean_str(name) else "?"
        raise s._Reject(s.UNKNOWN_FIELD, f"unknown field {name!r}")
    event_id = s._event_id(raw)
    event_type = raw.get("type")
    if event_type is None:
        raise s._Reject(s.MISSING_FIELD, "type is required")
    if not isinstance(event_type, str) or event_type not in s.EVENT_TYPES:
        raise s._Reject(s.INVALID_EVENT_TYPE, "type must be one of " + ", ".join(sorted(s.EVENT_TYPES)))
    user_id = s._string(raw, "user_id") or fallback_user_id
    if not user_id:
        raise s._Reject(s.MISSING_FIELD, "user_id is required")
    if not re.fullmatch(r"[^\s/\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,64}", user_id):
        raise s._Reject(s.INVALID_USER_ID, f"user_id {s.USER_ID_RULE}")
    return ValidEvent(
        event_id=event_id,
        type=event_type,
        user_id=user_id,
        session_id=s._string(raw, "session_id"),
        ts_ms=s._ts(raw, limits),
        url=s._string(raw, "url"),
        referrer=s._string(raw, "referrer"),
        item_id=s._string(raw, "item_id"),
        categories=s._categories(raw, limits),
        ad=s._ad(raw, event_type),
        properties=s._properties(raw, event_type, limits),
    )


def validate_plain(raw: Any, *, limits: Limits, fallback_user_id: str = "") -> ValidEvent | Rejection:
    """``event_validate`` through ``_validate_plain`` (the helpers only, no inline branches)."""
    try:
        return _validate_plain(raw, limits=limits, fallback_user_id=fallback_user_id)
    except schema._Reject as exc:
        return Rejection(exc.reason, exc.detail)
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        return Rejection("invalid_type", type(exc).__name__)


_ID = "6f1c2a3e-5b7d-4c8e-9f00-112233445566"
_NOT_STRINGS = [None, 0, False, [], 7, True, ["a"]]
_STRING_LIMITS = {"user_id": 64, "session_id": 64, "url": 2048, "referrer": 2048, "item_id": 128}


def _edge_strings(limit: int) -> list[object]:
    """Strings at and around ``limit`` characters ending in ASCII, non-ASCII, NUL, an unpaired
    surrogate or a newline, and values that are not strings."""
    values: list[object] = [
        "a" * (n - 1) + last if n else ""
        for n in (0, 1, limit - 1, limit, limit + 1)
        for last in ("a", "é", "\x00", "\ud800", "\n")
    ]
    return values + _NOT_STRINGS


# Values at the edges of what each inline branch of _validate accepts, field by field.
EDGES: dict[str, list[object]] = {
    "event_id": [
        _ID,
        _ID.upper(),
        _ID[:-1] + "\n",
        _ID[:-1] + "g",
        "x" * 36,
        "{" + _ID[1:-1] + "}",
        _ID.replace("-", ""),
        "",
        5,
    ],
    "type": [*sorted(schema.EVENT_TYPES), "Page_view", "", None, 3],
    **{name: _edge_strings(limit) for name, limit in _STRING_LIMITS.items()},
    "ts": [
        LIMITS.min_ts_ms - 1,
        LIMITS.min_ts_ms,
        NOW_MS - LIMITS.max_age_ms - 1,
        NOW_MS - LIMITS.max_age_ms,
        NOW_MS,
        NOW_MS + LIMITS.max_future_ms,
        NOW_MS + LIMITS.max_future_ms + 1,
        True,
        float(NOW_MS),
        str(NOW_MS),
        None,
    ],
    "categories": [
        None,
        "",
        0,
        {},
        "sports",
        [],
        ["sports"],
        ["sports", "news", "sports"],
        ["Bad"],
        ["x\n"],
        [3],
    ],
    "ad": [None, {"creative_id": "c1"}, {"creative_id": ""}, {"x": "y"}, "ad"],
    "properties": [None, {}, {"engaged_ms": 5}, {"engaged_ms": -1}, [], "p"],
}
_MISSING = object()


def _with_changes(changes: list[tuple[str, Any]]) -> dict[str, Any]:
    """A valid event with a few fields replaced (or removed, for ``_MISSING``)."""
    event = make_event(ts=NOW_MS)
    for name, value in changes:
        if value is _MISSING:
            event.pop(name, None)
        else:
            event[name] = value
    return event


def _agree(raw: Any) -> None:
    for limits in (LIMITS, Limits(now_ms=NOW_MS)):
        for fallback in ("", "cookie-visitor"):
            expected = validate_plain(raw, limits=limits, fallback_user_id=fallback)
            assert event_validate(raw, limits=limits, fallback_user_id=fallback) == expected, raw


def test_inline_checks_agree_with_the_helpers_at_each_edge() -> None:
    """Each field of a valid event set, one at a time, to each edge value or left out (exhaustive)."""
    for event_type in ("page_view", "page_ping", "ad_click"):
        for name, values in EDGES.items():
            for value in [*values, _MISSING]:
                _agree(_with_changes([("type", event_type), (name, value)]))


# One to three fields of an otherwise valid event at an edge (now and then left out, or an unknown
# field added), for the combinations the exhaustive test above does not try.
edge_change = st.tuples(st.sampled_from([*sorted(EDGES), "other"]), st.integers(0, 9)).flatmap(
    lambda pick: (
        st.just(_MISSING)
        if pick[1] == 0 and pick[0] != "other"
        else (st.sampled_from(EDGES[pick[0]]) if pick[0] in EDGES else field_values)
    ).map(lambda value: (pick[0], value))
)
edge_events = st.lists(edge_change, min_size=1, max_size=3).map(_with_changes)


@settings(max_examples=1000, deadline=None)
@given(raw=st.one_of(edge_events, event_dicts, json_values))
def test_inline_checks_agree_with_the_helpers(raw: Any) -> None:
    _agree(raw)

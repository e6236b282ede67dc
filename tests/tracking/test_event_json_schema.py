"""The published Event schema (tracking.schema.event_json_schema) and event validation agree.

The schema is built from the validator's own definitions; here, events the validator accepts are valid by
the schema, and each event the schema refuses is rejected by the validator too (with the reason a client
would look up under `rejected`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jsonschema_rs
import pytest

from tracking.schema import FIELDS, Limits, Rejection, ValidEvent, event_json_schema, event_validate

NOW_MS = int(time.time() * 1000)
LIMITS = Limits(now_ms=NOW_MS)
SCHEMA = event_json_schema(limits=LIMITS)


def _nullable_as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema (what a JSON Schema validator understands)."""
    if isinstance(node, dict):
        node = {key: _nullable_as_json_schema(value) for key, value in node.items()}
        if node.pop("nullable", False):
            node = {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_nullable_as_json_schema(item) for item in node]
    return node


VALIDATOR = jsonschema_rs.validator_for(_nullable_as_json_schema(SCHEMA))


def _event(**fields: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": "page_view", "user_id": "u-1", "ts": NOW_MS, **fields}


@pytest.mark.parametrize(
    "event",
    [
        _event(),
        _event(ts="2026-01-02T03:04:05Z", session_id="s", url="https://example.org/", referrer=None),
        _event(categories=["sports", "travel-2"], item_id="a-1", properties={"engaged_ms": 1500}, type="page_ping"),
        _event(type="ad_click", ad={"creative_id": "7", "campaign_id": "3", "placement": "sidebar"}),
        _event(type="ad_impression", ad={"creative_id": "7", "placement_id": "footer"}, ts=float(NOW_MS)),
    ],
)
def test_an_event_the_validator_accepts_is_valid_by_the_schema(event: dict[str, Any]) -> None:
    assert isinstance(event_validate(event, limits=LIMITS), ValidEvent)
    assert VALIDATOR.is_valid(event), list(VALIDATOR.iter_errors(event))


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (_event(bogus=1), "unknown_field"),
        ({"type": "page_view", "user_id": "u", "ts": NOW_MS}, "missing_field"),
        (_event(type="pageview"), "invalid_event_type"),
        (_event(user_id="a b"), "invalid_user_id"),
        (_event(user_id="x" * 65), "value_too_long"),
        (_event(session_id="s" * 65), "value_too_long"),
        (_event(url=7), "invalid_type"),
        (_event(ts=True), "invalid_type"),
        (_event(ts=1000), "ts_too_old"),
        (_event(categories=["Sports"]), "invalid_category"),
        (_event(categories=[f"c{i}" for i in range(21)]), "too_many_categories"),
        (_event(ad={"creative": "7"}), "invalid_ad"),
        (_event(ad={"creative_id": "7" * 65}), "invalid_ad"),
        (_event(properties=[1]), "invalid_type"),
    ],
)
def test_an_event_the_schema_refuses_is_rejected_by_the_validator(event: dict[str, Any], reason: str) -> None:
    assert not VALIDATOR.is_valid(event)
    outcome = event_validate(event, limits=LIMITS)
    assert isinstance(outcome, Rejection) and outcome.reason == reason


def test_the_schema_names_every_field_the_validator_takes() -> None:
    assert set(SCHEMA["properties"]) == FIELDS
    assert SCHEMA["additionalProperties"] is False

"""One user id rule on every endpoint: events, interests (single and batch) and ad decisions.

The same bad ids are refused everywhere (a 400 JSON body naming the field; an event is rejected with
``invalid_user_id`` and kept in quarantine, as the events contract says); the ids real visitors have
(the identity cookie's UUIDs, the demo's ``demo-00001``, MovieLens's numeric ids) pass everywhere.
"""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import quote

import pytest

from inference.api import user_id_valid

pytestmark = pytest.mark.django_db

BAD_IDS = [
    "with space",
    "tab\there",
    "new\nline",
    "trailing\n",
    "nul\x00",
    "bell\x07",
    "del\x7f",
    "no\u00a0break",  # a Unicode space
    "slash/inside",
    "x" * 65,
]
GOOD_IDS = [
    "demo-00001", "610", str(uuid.uuid4()), "visitor.1:a_b-C", "x" * 64,
    "reader@example.com", "u:{x}", "caf\u00e9", "a+b=c|d",  # imported datasets' own ids
]


def test_the_rule_itself() -> None:
    assert all(user_id_valid(good) for good in GOOD_IDS)
    assert not any(user_id_valid(bad) for bad in BAD_IDS)
    assert not user_id_valid("") and not user_id_valid(123) and not user_id_valid(None)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_interests_refuses_the_bad_id_with_a_400_naming_it(token_client, bad: str) -> None:
    if "/" in bad:  # an encoded slash matches no route: a JSON 404 under /api/
        response = token_client.get(f"/api/v1/users/{quote(bad, safe='')}/interests")
        assert (response.status_code, response.json()) == (404, {"errors": {"path": "no such API endpoint"}})
        return
    response = token_client.get(f"/api/v1/users/{quote(bad, safe='')}/interests")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["user_id"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_batch_refuses_the_bad_id_with_a_400_naming_its_index(token_client, bad: str) -> None:
    response = token_client.post(
        "/api/v1/interests/batch", json.dumps({"user_ids": ["demo-00001", bad]}), content_type="application/json"
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["user_ids[1]"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_decisions_refuse_the_bad_id_with_a_400_naming_it(token_client, bad: str) -> None:
    response = token_client.post(
        "/api/v1/ads/decisions", json.dumps({"user_id": bad, "placements": ["sidebar"]}), content_type="application/json"
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["user_id"]


def test_events_reject_each_bad_id_and_accept_each_good_one(token_client, settings) -> None:
    settings.TRACKING = {**settings.TRACKING, "BUFFER": "database"}
    now = int(time.time() * 1000)
    events = [
        {"event_id": str(uuid.uuid4()), "type": "page_view", "user_id": user_id, "session_id": "s", "ts": now}
        for user_id in [*BAD_IDS, *GOOD_IDS]
    ]
    response = token_client.post("/api/v1/events", json.dumps({"events": events}), content_type="application/json")
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == len(GOOD_IDS)
    reasons = {item["index"]: item["reason"] for item in body["rejected"]}
    assert sorted(reasons) == list(range(len(BAD_IDS)))
    # too long is value_too_long, NUL is invalid_string (as before); the rest break the id rule
    assert {reasons[i] for i, bad in enumerate(BAD_IDS) if len(bad) <= 64 and "\x00" not in bad} == {"invalid_user_id"}


@pytest.mark.parametrize("good", GOOD_IDS)
def test_real_visitors_ids_pass_the_apis(token_client, good: str) -> None:
    assert token_client.get(f"/api/v1/users/{good}/interests").status_code == 200
    batch = token_client.post("/api/v1/interests/batch", json.dumps({"user_ids": [good]}), content_type="application/json")
    assert batch.status_code == 200

"""Accepted events update the online features inside the collect request; bot events never do."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from inference.store import feature_store_reset, serving_state_reader

BROWSER_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

pytestmark = pytest.mark.django_db


def event(user_id: str, kind: str, category: str, item: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": kind,
        "user_id": user_id,
        "session_id": f"{user_id}-session",
        "ts": int(time.time() * 1000),
        "url": f"https://example.org/{category}/{item}",
        "referrer": "",
        "item_id": item,
        "categories": [category],
        "properties": {},
    }


def collect(client: Client, events: list[dict[str, Any]], ua: str = BROWSER_UA) -> None:
    for user in dict.fromkeys(str(e["user_id"]) for e in events):  # each visitor from their own browser
        client.cookies["adsite_uid"] = user
        mine = [e for e in events if str(e["user_id"]) == user]
        response = client.post(
            "/collect", json.dumps({"events": mine}), content_type="text/plain", HTTP_USER_AGENT=ua
        )
        assert response.status_code == 202
        assert response.json()["accepted"] + response.json()["duplicate"] == len(mine) or ua != BROWSER_UA


@pytest.fixture(
    autouse=True,
    params=["memory", pytest.param("redis", marks=pytest.mark.requires_redis)],
)
def store_kind(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    """Both backends: the in-process store (embedded) and Redis (services mode, emptied first)."""
    if request.param == "redis":
        request.getfixturevalue("redis_client")
    settings.TRACKING = {**settings.TRACKING, "BUFFER": "database"}
    settings.INFERENCE = {**settings.INFERENCE, "STORE": request.param, "STORE_POPULATION_CACHE_S": 0.0}
    feature_store_reset()
    yield request.param
    feature_store_reset()


def test_the_next_read_already_reflects_the_last_click(client: Client) -> None:
    read = serving_state_reader()
    collect(client, [event("reader-1", "page_view", "travel", "lisbon")])
    user, _ = read("reader-1")
    assert user is not None and user.counts == {"travel": 1.0}
    collect(client, [event("reader-1", "click", "food", "pasteis")])
    user, population = read("reader-1")
    assert user is not None and user.counts == {"travel": 1.0, "food": 1.0}
    assert user.recent[-1].item_id == "pasteis"
    assert population is not None and population.counts["food"] == 1.0


def test_bot_events_never_touch_the_feature_store(client: Client) -> None:
    collect(client, [event("crawler-1", "page_view", "travel", "lisbon")], ua=BOT_UA)
    user, population = serving_state_reader()("crawler-1")
    assert user is None
    assert population is not None and "travel" not in population.counts


@pytest.mark.django_db
def test_a_category_slug_flood_never_reaches_the_population(client: Client) -> None:
    """A script posts page views with thousands of made-up category slugs: the events keep them, the
    visitor's features and the shared population hold only the site's own categories."""
    from adsite.content.models import Category
    from tracking.models import Event

    for slug in ("travel", "food"):
        Category.objects.create(slug=slug, name=slug.title())
    read = serving_state_reader()
    collect(client, [event("reader-1", "page_view", "travel", "lisbon")])
    _, before = read("reader-1")
    flood = [
        {**event("flooder", "page_view", "travel", f"page-{n}"), "categories": [f"buy-now-{n}-{k}" for k in range(20)]}
        for n in range(200)
    ]
    for start in range(0, len(flood), 100):
        collect(client, flood[start : start + 100])
    user, population = read("flooder")
    assert set(population.counts) == set(before.counts) == {"travel"}
    assert population.counts == before.counts  # none of the flood's 4,000 slugs, nor a count for them
    assert user is None or not user.counts
    stored = Event.objects.filter(user_id="flooder").first()
    assert stored is not None and len(stored.categories) == 20  # kept in the event, for the record

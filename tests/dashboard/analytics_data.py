"""Browsing history spanning days for the analytics tests and screenshots: visits with session ids,
URLs (some with UTM tags), referrers, engaged-time pings, real browser user agents, through the
tracking pipeline (``events_ingest``) with the times they happened."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

CHROME_DESKTOP = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
)
SAFARI_PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
FIREFOX_DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
AGENTS = (CHROME_DESKTOP, SAFARI_PHONE, FIREFOX_DESKTOP)
SOURCES = (
    ("", ""),
    ("https://www.google.com/search?q=bellwether", ""),
    ("https://news.ycombinator.com/", ""),
    ("", "?utm_source=newsletter&utm_medium=email&utm_campaign=weekly-digest"),
    ("https://t.co/x", "?utm_source=twitter&utm_medium=social&utm_campaign=spring-launch"),
)
PAGES = [
    ("/", []),
    ("/category/travel/", ["travel"]),
    ("/article/ten-quiet-islands/", ["travel"]),
    ("/article/marathon-training-plan/", ["sports"]),
    ("/article/the-new-telescopes/", ["science"]),
    ("/category/technology/", ["technology"]),
    ("/article/laptops-for-students/", ["technology"]),
]


def _event(**fields: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "properties": {}, **fields}


def history_ingest(*, days: int = 14, visitors: int = 40, seed: int = 5, now: datetime | None = None) -> int:
    """Visits over the last ``days`` days (today included); returns the events accepted."""
    from tracking.api import IngestContext, events_ingest

    rng = random.Random(seed)
    now = now or timezone.now()
    accepted = 0
    for v in range(visitors):
        user = f"reader-{v:03d}"
        agent = AGENTS[v % len(AGENTS)]
        for _ in range(rng.randint(1, 4)):
            start = now - timedelta(days=rng.uniform(0, days - 0.05), minutes=rng.uniform(1, 50))
            if start > now - timedelta(minutes=2):
                start = now - timedelta(minutes=5)
            referrer, tags = SOURCES[rng.randrange(len(SOURCES))]
            session = uuid.uuid4().hex[:16]
            events = []
            at = start
            for n in range(rng.choice((1, 1, 2, 3, 5))):
                path, categories = PAGES[rng.randrange(len(PAGES))]
                url = f"https://bellwether.example{path}{tags if n == 0 else ''}"
                ts = int(at.timestamp() * 1000)
                events.append(_event(type="page_view", user_id=user, session_id=session, ts=ts, url=url,
                                     referrer=referrer if n == 0 else "", categories=categories))
                engaged = rng.choice((3_000, 15_000, 45_000, 90_000))
                events.append(_event(type="page_ping", user_id=user, session_id=session, ts=ts + engaged,
                                     url=url, properties={"engaged_ms": engaged}))
                at += timedelta(milliseconds=engaged + 4000)
            context = IngestContext(source="tracker", received_at=timezone.now(), user_agent=agent)
            accepted += events_ingest(events=events, context=context).accepted
    return accepted

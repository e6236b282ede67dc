"""Event factories and request helpers for the tracking tests."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from django.test import Client

BROWSER_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
MOBILE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def make_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": "page_view",
        "user_id": "visitor-1",
        "session_id": "session-1",
        "ts": int(time.time() * 1000),
        "url": "https://example.org/a/one",
        "referrer": "",
        "item_id": "one",
        "categories": ["technology"],
        "properties": {},
    }
    event.update(overrides)
    return {key: value for key, value in event.items() if value is not ...}


def post_collect(
    client: Client,
    events: list[Any] | None = None,
    *,
    body: bytes | str | None = None,
    ua: str = BROWSER_UA,
    **extra: Any,
) -> Any:
    payload = body if body is not None else json.dumps({"events": events or []})
    # as tracker.js: the events are the identity cookie's visitor's (the first event names it)
    first = (events or [None])[0]
    if "adsite_uid" not in client.cookies and isinstance(first, dict) and isinstance(first.get("user_id"), str):
        client.cookies["adsite_uid"] = first["user_id"]
    return client.post("/collect", payload, content_type="text/plain", HTTP_USER_AGENT=ua, **extra)

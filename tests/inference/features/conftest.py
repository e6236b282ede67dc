"""A generated clickstream with every event type, several sessions and devices, spanning many decay epochs."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from inference.events import EventRecord

CATEGORIES = ("sports", "travel", "food", "tech", "autos", "music", "news")


def make_stream(
    *, users: int = 6, events: int = 900, seed: int = 7, start: float = 1_600_000_000.0
) -> list[EventRecord]:
    """Time-ordered events over ~60 days (several 1-hour-half-life epochs of 128 hours)."""
    rng = random.Random(seed)
    ts = start
    stream = []
    for _ in range(events):
        ts += rng.choice((0.0, 1.0, 30.0, 300.0, 3_600.0, 20_000.0))  # 0: ties happen
        user = f"user-{rng.randrange(users)}"
        kind = rng.choices(
            ("page_view", "page_ping", "click", "ad_impression", "ad_click", "conversion"),
            (10, 4, 3, 3, 1, 1),
        )[0]
        favourite = CATEGORIES[int(user.rsplit("-", 1)[1]) % len(CATEGORIES)]
        picks = [
            favourite if rng.random() < 0.6 else rng.choice(CATEGORIES) for _ in range(rng.randint(1, 2))
        ]
        categories = tuple(dict.fromkeys(picks))
        stream.append(
            EventRecord(
                user_id=user,
                ts=ts,
                type=kind,
                categories=categories,
                item_id=f"item-{rng.randrange(40)}",
                session_id=f"{user}-s{int(ts // 7_200)}",
                engaged_ms=rng.randrange(1, 20_000) if kind == "page_ping" else 0,
                device=rng.choice(("desktop", "mobile", "tablet")),
            )
        )
    return stream


@pytest.fixture
def stream() -> Callable[..., list[EventRecord]]:
    return make_stream

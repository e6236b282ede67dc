"""Generated clickstreams for inference tests: each user mostly reads one category of their own."""

from __future__ import annotations

import random
from collections.abc import Sequence

from inference.events import EventRecord


def affinity_stream(
    categories: Sequence[str], *, seed: int, events: int = 1500, users: int = 30, step_s: float = 60.0
) -> list[EventRecord]:
    """``events`` page views in time order; user ``u<k>`` reads ``categories[k % len]`` 70% of the time."""
    rng = random.Random(seed)
    records = []
    for n in range(events):
        user = rng.randrange(users)
        own = categories[user % len(categories)]
        category = own if rng.random() < 0.7 else rng.choice(categories)
        records.append(
            EventRecord(
                user_id=f"u{user}",
                ts=1.7e9 + n * step_s,
                type="page_view",
                categories=(category,),
                item_id=str(n % 90),
            )
        )
    return records

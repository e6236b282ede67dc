"""Generated browsing traffic for the demo site.

Simulated visitors each have a hidden interest profile over the site's categories (a few strong
interests, slowly drifting) and browse in sessions. The output is rows of the generic events file of
EVALUATION.md (``user_id,item_id,categories,timestamp,type``), so the same traffic can be imported
through the tracking pipeline (``make run`` does so to train the first models) and evaluated with
``evaluate_interests`` like any external dataset.
"""

from __future__ import annotations

import csv
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GENERIC_HEADER = ("user_id", "item_id", "categories", "timestamp", "type")


@dataclass(frozen=True, slots=True)
class TrafficRow:
    user_id: str
    item_id: str
    categories: tuple[str, ...]
    timestamp: int
    type: str = "page_view"


@dataclass(frozen=True, slots=True)
class TrafficSpec:
    visitors: int = 400
    days: int = 45
    # The last possible event time; 0 means now (the demo should look fresh). Fix it to reproduce a file.
    end_ts: int = 0
    seed: int = 7
    sessions_per_visitor: tuple[int, int] = (3, 14)
    views_per_session: tuple[int, int] = (2, 9)
    strong_interests: tuple[int, int] = (1, 4)
    # Probability that a page view follows the visitor's interests rather than the front page mix.
    interest_share: float = 0.8
    # Probability, per session, that one strong interest is swapped for another (interests drift).
    drift: float = 0.05


def _weighted_choice(rng: random.Random, items: Sequence[str], weights: Sequence[float]) -> str:
    return rng.choices(items, weights=weights, k=1)[0]


def traffic_rows(
    *,
    articles_by_category: Mapping[str, Sequence[str]],
    spec: TrafficSpec = TrafficSpec(),
) -> Iterator[TrafficRow]:
    """Yield page views in time order for ``spec.visitors`` simulated visitors.

    ``articles_by_category`` maps a category slug to the slugs of its articles (item ids).
    """
    categories = sorted(slug for slug, items in articles_by_category.items() if items)
    if not categories:
        return
    rng = random.Random(spec.seed)
    # Category popularity on the "front page": a Zipf-like mix, shuffled so it is not alphabetical.
    popular = categories[:]
    rng.shuffle(popular)
    front_weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(popular))]
    end_ts = spec.end_ts or int(time.time())
    start_ts = end_ts - spec.days * 86_400

    rows: list[TrafficRow] = []
    for number in range(spec.visitors):
        user_id = f"demo-{number:05d}"
        k = rng.randint(*spec.strong_interests)
        interests = rng.sample(categories, k=min(k, len(categories)))
        weights = [rng.uniform(0.5, 2.0) for _ in interests]
        n_sessions = rng.randint(*spec.sessions_per_visitor)
        session_starts = sorted(rng.uniform(start_ts, end_ts - 3_600) for _ in range(n_sessions))
        for session_start in session_starts:
            if rng.random() < spec.drift:
                replaced = rng.randrange(len(interests))
                interests[replaced] = rng.choice(categories)
            ts = session_start
            for _ in range(rng.randint(*spec.views_per_session)):
                if rng.random() < spec.interest_share:
                    category = _weighted_choice(rng, interests, weights)
                else:
                    category = _weighted_choice(rng, popular, front_weights)
                item = rng.choice(articles_by_category[category])
                rows.append(TrafficRow(user_id, item, (category,), int(ts)))
                ts += rng.uniform(20, 240)
    rows.sort(key=lambda row: (row.timestamp, row.user_id))
    yield from rows


def traffic_write_csv(*, rows: Iterator[TrafficRow], path: Path) -> int:
    """Write rows as the generic events file; returns the number of rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(GENERIC_HEADER)
        for row in rows:
            writer.writerow((row.user_id, row.item_id, "|".join(row.categories), row.timestamp, row.type))
            count += 1
    return count

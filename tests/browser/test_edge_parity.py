"""Edge parity: the same events through the browser's edge.js and through Python's feature code
(``inference.features``) and edge model give the same top categories and probabilities (within 1e-4)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.events import EventRecord
from inference.features import states_replay, user_features
from inference.models.edge import EDGE_FEATURES, EdgeModel

pytestmark = pytest.mark.browser

EDGE_JS = Path(__file__).resolve().parents[2] / "inference" / "static" / "inference" / "edge.js"
CATEGORIES = [f"cat-{i}" for i in range(30)]


def edge_model(seed: int) -> EdgeModel:
    """Random weights on every feature (each one moves the scores) over a skewed popularity."""
    rng = np.random.default_rng(seed)
    popularity = {c: float(int(1000 / (i + 1))) for i, c in enumerate(CATEGORIES[:25])}  # 5 unknown ones
    return EdgeModel(
        weights=rng.normal(scale=0.8, size=len(EDGE_FEATURES)),
        bias=-1.5,
        categories=list(popularity),
        popularity=popularity,
        hyperparameters={"popular_k": 8},
    )


def visitor_events(seed: int, n: int) -> list[EventRecord]:
    """A visitor over two weeks: bursts of a few favourites, stray categories, a few events out of order,
    some with two categories, ad impressions (no interest) among them."""
    rng = random.Random(seed)
    favourites = rng.sample(CATEGORIES, 4)
    ts = 1_750_000_000.0
    out = []
    for _ in range(n):
        ts += rng.choice([5.0, 40.0, 300.0, 4 * 3600.0, 2 * 86400.0]) if rng.random() < 0.9 else -120.0
        cats = [rng.choice(favourites) if rng.random() < 0.7 else rng.choice(CATEGORIES)]
        if rng.random() < 0.2:
            cats.append(rng.choice(CATEGORIES))
        kind = rng.choice(["page_view"] * 8 + ["click", "ad_impression"])
        out.append(
            EventRecord(user_id="v", ts=ts, type=kind, categories=tuple(cats), item_id=f"i{rng.randrange(40)}")
        )
    return out


def browser_scores(page: Any, model: dict[str, Any], events: list[EventRecord], now: float) -> list[dict[str, Any]]:
    payload = [{"type": e.type, "ts": e.ts, "categories": list(e.categories), "item_id": e.item_id} for e in events]
    return page.evaluate(
        """([model, events, now]) => {
            const p = adsiteEdge.profileNew();
            events.forEach((e) => adsiteEdge.observe(p, e));
            return adsiteEdge.score(model, JSON.parse(JSON.stringify(p)), now, 10);
        }""",
        [model, payload, now],
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_edge_js_and_python_give_the_same_top_categories_and_probabilities(browser: Any, seed: int) -> None:
    model = edge_model(seed)
    exported = json.loads(json.dumps(model.export()))  # what the browser loads: the file's JSON
    page = browser.new_page()
    page.set_content("<html><body></body></html>")
    page.add_script_tag(path=str(EDGE_JS))
    for n, gap in ((3, 60.0), (25, 3600.0), (80, 5 * 86400.0)):  # thin, a day's visit, months of history
        events = sorted(visitor_events(seed * 100 + n, n), key=lambda e: e.ts)  # as the store applies them
        now = max(e.ts for e in events) + gap
        states, _ = states_replay(events)
        python = model.predict(user_features(states["v"], now), None, now=now, top=10)
        js = browser_scores(page, exported, events, now)
        assert [item["category"] for item in js] == [c for c, _ in python], (seed, n)
        assert np.allclose([item["probability"] for item in js], python.probabilities, atol=1e-4, rtol=0), (seed, n)
    page.close()

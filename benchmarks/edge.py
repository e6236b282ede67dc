"""Edge mode budgets in Debian's Chromium: extra bytes per page and the time of one scoring.

    python -m benchmarks.edge [--categories 19,500] [--events 50,400] [--runs 300]

Prints one JSON object:

- ``bytes``: gzipped sizes (level 9, as a server compresses static files) of ``inference/static/inference/edge.js``,
  of ``adsite/ads/static/ads/edge-ads.js``, of an exported edge model file per category count, of an
  offers answer per offer count (``--offers``; made-up creatives of the demo's text lengths, real
  signed offer tokens), and of what edge mode added to ``tracker.js`` (this tree's file against the
  one before edge.js was added, when git can show it);
- ``scoring``: per (categories, visitor events), the median and p95 milliseconds of one
  ``adsiteEdge.score`` call (candidates, the 15 features, the logistic line, the sort), measured with
  ``performance.now()`` inside the page over ``--runs`` batches of 10 calls after 20 warm-up calls;
- ``ad_choice``: per offer count, the same for what the browser does to choose a page's ads from a
  500-category model and a 400-event visitor: score the visitor and the population (top 40), turn both
  into shares and rank the offers for three placements (``adsiteEdgeAds.rank``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from inference.models.edge import EDGE_FEATURES, EdgeModel

ROOT = Path(__file__).resolve().parents[1]
EDGE_JS = ROOT / "inference" / "static" / "inference" / "edge.js"
EDGE_ADS_JS = ROOT / "adsite" / "ads" / "static" / "ads" / "edge-ads.js"
TRACKER_JS = ROOT / "tracking" / "static" / "tracking" / "tracker.js"


def gz(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9))


def model_of(n: int) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    popularity = {f"category-{i:04d}": float(int(100_000 / (i + 1))) for i in range(n)}
    return EdgeModel(
        weights=rng.normal(size=len(EDGE_FEATURES)),
        bias=-2.0,
        categories=list(popularity),
        popularity=popularity,
        hyperparameters={"popular_k": 20},
        training={"version": f"bench-{n}"},
    ).export()


def visitor(n_events: int, categories: int) -> list[dict[str, Any]]:
    rng = random.Random(n_events)
    ts = 1_750_000_000.0
    out = []
    for _ in range(n_events):
        ts += rng.choice([30.0, 300.0, 3600.0, 86400.0])
        out.append({"type": "page_view", "ts": ts, "categories": [f"category-{rng.randrange(categories):04d}"]})
    return out


def offers_of(n: int) -> dict[str, Any]:
    """An offers answer of ``n`` offers (``adsite.ads.edge``'s fields) over three placements."""
    from django.conf import settings
    from django.core import signing

    if not settings.configured:
        settings.configure(SECRET_KEY="benchmark-" + "x" * 40)
    rng = random.Random(n)
    placements = [("leaderboard", "728x90"), ("sidebar", "300x250"), ("footer", "728x90")]
    offers = []
    for i in range(n):
        name, size = placements[i % 3]
        creative, campaign = 100 + i // 2, 10 + i // 4
        offers.append({
            "offer": signing.dumps({"c": creative, "k": campaign, "p": name}, salt="adsite.ads.offer", compress=True),
            "placement": name, "creative_id": creative, "campaign_id": campaign, "advertiser_id": campaign % 20,
            "advertiser": f"Advertiser {campaign % 20}", "tier_rank": rng.choice([0, 1, 1, 1, 2]),
            "pricing": rng.choice(["cpc", "cpm"]), "bid_micros": rng.randrange(200_000, 3_000_000),
            "quality": rng.uniform(0.005, 0.05),
            "interests": [[f"category-{rng.randrange(500):04d}", 1.0], [f"category-{rng.randrange(500):04d}", 0.5]],
            "interest_min_score": 0.0, "cap_per_hour": 0, "cap_per_day": 3, "kind": "image", "size": size,
            "headline": "Night trains across Europe, " + "x" * rng.randrange(5, 20),
            "body": "Sleep in Paris, wake up in Vienna: cabins from 49 euros, booked in two minutes " + "y" * rng.randrange(10),
            "cta": "Book a cabin", "image_url": f"/media/ads/creative-{creative}.svg", "html": "",
        })
    return {
        "placements": [{"name": n_, "size": s_} for n_, s_ in placements], "offers": offers,
        "knobs": {"smoothing": 0.05, "lift_power": 1.0, "lift_max": 8.0}, "interest_top": 40,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--categories", default="19,500")
    parser.add_argument("--events", default="50,400")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--offers", default="40,160")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    sizes: dict[str, Any] = {"edge.js": gz(EDGE_JS.read_bytes()), "edge-ads.js": gz(EDGE_ADS_JS.read_bytes())}
    answers = {int(n): offers_of(int(n)) for n in args.offers.split(",")}
    for n, answer in answers.items():
        sizes[f"offers_answer_{n}_offers"] = gz(json.dumps(answer).encode())
    models = {int(n): model_of(int(n)) for n in args.categories.split(",")}
    for n, model in models.items():
        sizes[f"model_{n}_categories"] = gz(json.dumps(model, separators=(",", ":")).encode())
    try:
        added = subprocess.run(  # the commit that added edge.js: tracker.js before it had no edge mode
            ["git", "log", "--diff-filter=A", "--format=%H", "--", "inference/static/inference/edge.js"],
            cwd=ROOT, capture_output=True, check=True, text=True,
        ).stdout.split()[-1]
        before = subprocess.run(
            ["git", "show", f"{added}^:tracking/static/tracking/tracker.js"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        sizes["tracker.js_added"] = gz(TRACKER_JS.read_bytes()) - gz(before)
    except (OSError, subprocess.CalledProcessError, IndexError):
        pass
    scoring = {}
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox"])
        page = browser.new_page()
        page.set_content("<html><body></body></html>")
        page.add_script_tag(path=str(EDGE_JS))
        for n, model in models.items():
            for n_events in (int(e) for e in args.events.split(",")):
                timings = page.evaluate(
                    """([model, events, runs]) => {
                        const p = adsiteEdge.profileNew();
                        events.forEach((e) => adsiteEdge.observe(p, e));
                        const now = events[events.length - 1].ts + 60;
                        for (let i = 0; i < 20; i++) adsiteEdge.score(model, p, now, 5);
                        // performance.now() is coarsened (0.1 ms) in a page that is not cross-origin
                        // isolated: time batches of 10 calls, one figure per call
                        const out = [];
                        for (let i = 0; i < runs; i++) {
                            const t = performance.now();
                            for (let j = 0; j < 10; j++) adsiteEdge.score(model, p, now, 5);
                            out.push((performance.now() - t) / 10);
                        }
                        return out;
                    }""",
                    [model, visitor(n_events, n), args.runs],
                )
                scoring[f"{n}_categories_{n_events}_events"] = {
                    "median_ms": round(float(np.median(timings)), 3),
                    "p95_ms": round(float(np.percentile(timings, 95)), 3),
                }
        page.add_script_tag(path=str(EDGE_ADS_JS))
        ad_choice = {}
        largest = models[max(models)]
        events = visitor(max(int(e) for e in args.events.split(",")), max(models))
        for n, answer in answers.items():
            timings = page.evaluate(
                """([model, events, answer, runs]) => {
                    const p = adsiteEdge.profileNew();
                    events.forEach((e) => adsiteEdge.observe(p, e));
                    const now = events[events.length - 1].ts + 60;
                    const choose = () => adsiteEdgeAds.rank(
                        answer,
                        adsiteEdgeAds.shares(adsiteEdge.score(model, p, now, answer.interest_top)),
                        adsiteEdgeAds.shares(adsiteEdge.score(model, adsiteEdge.profileNew(), now, answer.interest_top)),
                        now,
                    );
                    for (let i = 0; i < 20; i++) choose();
                    const out = [];
                    for (let i = 0; i < runs; i++) {
                        const t = performance.now();
                        for (let j = 0; j < 10; j++) choose();
                        out.push((performance.now() - t) / 10);
                    }
                    return out;
                }""",
                [largest, events, answer, args.runs],
            )
            ad_choice[f"{n}_offers"] = {
                "median_ms": round(float(np.median(timings)), 3),
                "p95_ms": round(float(np.percentile(timings, 95)), 3),
            }
        browser.close()
    print(json.dumps({"bytes": sizes, "scoring": scoring, "ad_choice": ad_choice}, indent=1))


if __name__ == "__main__":
    main()

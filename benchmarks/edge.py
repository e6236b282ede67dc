"""Edge mode budgets in Debian's Chromium: extra bytes per page and the time of one scoring.

    python -m benchmarks.edge [--categories 19,500] [--events 50,400] [--runs 300]

Prints one JSON object:

- ``bytes``: gzipped sizes (level 9, as a server compresses static files) of ``inference/static/inference/edge.js``,
  of an exported edge model file per category count, and of what edge mode added to ``tracker.js``
  (this tree's file against ``main``'s, when git can show it);
- ``scoring``: per (categories, visitor events), the median and p95 milliseconds of one
  ``adsiteEdge.score`` call (candidates, the 15 features, the logistic line, the sort), measured with
  ``performance.now()`` inside the page over ``--runs`` batches of 10 calls after 20 warm-up calls.
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--categories", default="19,500")
    parser.add_argument("--events", default="50,400")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    sizes: dict[str, Any] = {"edge.js": gz(EDGE_JS.read_bytes())}
    models = {int(n): model_of(int(n)) for n in args.categories.split(",")}
    for n, model in models.items():
        sizes[f"model_{n}_categories"] = gz(json.dumps(model, separators=(",", ":")).encode())
    try:
        before = subprocess.run(
            ["git", "show", "main:tracking/static/tracking/tracker.js"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        sizes["tracker.js_added"] = gz(TRACKER_JS.read_bytes()) - gz(before)
    except (OSError, subprocess.CalledProcessError):
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
        browser.close()
    print(json.dumps({"bytes": sizes, "scoring": scoring}, indent=1))


if __name__ == "__main__":
    main()

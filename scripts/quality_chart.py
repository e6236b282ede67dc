"""Draw docs/quality-by-gap.png: NDCG@5 by time since the visitor's last event, per ranker.

Reads the JSON reports of ``manage.py evaluate_serving --later-days ... --json`` (one per dataset) and
pools, per gap bucket, the cases of the run at the cut-off and of every later run (each served case
counts once in the bucket of its own gap). Needs matplotlib (``pip install -e '.[docs]'``)::

    python scripts/quality_chart.py docs/quality-by-gap.png taobao.json movielens.json demo.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

BUCKETS = ("minutes", "hours", "days", "weeks", "months", "years")
SERIES = (  # (label, where in a by_gap entry)
    ("served", ("served",)),
    ("neural (offline)", ("offline", "neural")),
    ("gbdt (offline)", ("offline", "gbdt")),
    ("frequency", ("baselines", "frequency")),
    ("decayed", ("baselines", "decayed")),
)

COLORS = {
    "neural (offline)": "tab:blue",
    "gbdt (offline)": "tab:orange",
    "frequency": "tab:green",
    "decayed": "tab:red",
}


def pooled(report: dict[str, Any]) -> dict[str, dict[str, tuple[float, int]]]:
    """series label -> bucket -> (mean NDCG@5, users), over the report and its ``later`` runs."""
    runs = [report, *(report.get("later") or {}).values()]
    sums: dict[str, dict[str, list[float]]] = {label: {} for label, _ in SERIES}
    for run in runs:
        for bucket, entry in run["by_gap"].items():
            for label, path in SERIES:
                found: Any = entry
                for key in path:
                    found = (found or {}).get(key)
                if not found or not found.get("users"):
                    continue
                total = sums[label].setdefault(bucket, [0.0, 0])
                total[0] += found["ndcg@5"] * found["users"]
                total[1] += found["users"]
    return {
        label: {b: (s / n, int(n)) for b, (s, n) in by_bucket.items() if n}
        for label, by_bucket in sums.items()
    }


def main(out: str, *reports: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = [json.loads(Path(p).read_text(encoding="utf-8")) for p in reports]
    figure, axes = plt.subplots(1, len(loaded), figsize=(5.2 * len(loaded), 4.2), squeeze=False)
    for axis, report in zip(axes[0], loaded, strict=True):
        series = pooled(report)
        for label, _ in SERIES:
            points = [(i, *series[label][b]) for i, b in enumerate(BUCKETS) if b in series[label]]
            if not points:
                continue
            # one colour per ranker in every panel; the served line drawn over the offline ones
            style = (
                {"linewidth": 3.0, "color": "black", "zorder": 3, "alpha": 0.6}
                if label == "served"
                else {"linewidth": 1.4, "color": COLORS[label], "zorder": 2}
            )
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label, **style)
        axis.set_xticks(range(len(BUCKETS)), BUCKETS)
        axis.set_xlabel("time since the visitor's last event")
        axis.set_title(f"{report['dataset']} ({report['split']} split, {report['test_users']} users)")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("NDCG@5")
    axes[0][-1].legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:])

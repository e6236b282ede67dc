"""Draw docs/calibration.png: the reliability diagram of each model's calibrated probabilities.

Reads the JSON reports of ``manage.py evaluate_interests --json`` (one per dataset) and plots, per
model, the observed rate of the category among the test users' next H events against the mean
predicted probability of each bin (the ``calibration.reliability`` bins; marker area = pairs), with
the expected calibration error in the legend. Needs matplotlib (``pip install -e '.[docs]'``)::

    python scripts/calibration_chart.py docs/calibration.png taobao-userbehavior-dev=taobao_time.json ...

(``name=path`` titles a panel with ``name`` instead of the report's own dataset name.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLORS = {"neural": "tab:blue", "gbdt": "tab:orange", "prior": "tab:gray", "prior:reading": "tab:red"}


def main(out: str, *reports: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = []
    for argument in reports:
        name, _, path = argument.rpartition("=")
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        loaded.append({**report, "dataset": name or report["dataset"]})
    figure, axes = plt.subplots(1, len(loaded), figsize=(5.0 * len(loaded), 4.6), squeeze=False)
    for axis, report in zip(axes[0], loaded, strict=True):
        axis.plot([0, 1], [0, 1], color="black", linewidth=0.8, linestyle="--", label="perfectly calibrated")
        for name, result in report["results"].items():
            calibration = result.get("calibration")
            if not calibration or not calibration["reliability"]:
                continue
            bins = calibration["reliability"]
            total = sum(b["pairs"] for b in bins)
            axis.plot(
                [b["predicted"] for b in bins],
                [b["observed"] for b in bins],
                color=COLORS.get(name, "tab:green"),
                linewidth=1.4,
                label=f"{name} (ECE {calibration['ece']:.3f}; before {calibration['ece_uncalibrated']:.3f})",
            )
            axis.scatter(
                [b["predicted"] for b in bins],
                [b["observed"] for b in bins],
                s=[8 + 400 * b["pairs"] / total for b in bins],
                color=COLORS.get(name, "tab:green"),
                alpha=0.6,
            )
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.set_xlabel("predicted probability (bin mean)")
        axis.set_title(f"{report['dataset']} ({report['split']} split, H = {report['horizon']})")
        axis.grid(alpha=0.3)
        axis.legend(loc="upper left", fontsize=7)
    axes[0][0].set_ylabel("observed rate among the next H events")
    figure.tight_layout()
    figure.savefig(out, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:])

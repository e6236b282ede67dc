"""``manage.py evaluate_serving``: a split replayed through import, train, the registry, the online store
and the predictor serves what the offline scoring of the same artifacts measures."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from inference.registry.run_lock import LOCK_KEY
from inference.serving.runtime import predictor_install
from inference.store import feature_store_reset

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TAOBAO = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "taobao-userbehavior-dev" / "events.csv"
)
SMALL = {"gbdt": {"max_rounds": 30}, "neural": {"max_epochs": 3}}


@pytest.fixture
def scratch(tmp_path):
    """An empty registry, store and model directory, a fresh predictor; all put back afterwards."""
    cache.delete(LOCK_KEY)
    with override_settings(
        INFERENCE={
            "MODEL_DIR": str(tmp_path / "models"),
            "STORE": "memory",
            "STORE_REBUILD_ON_START": False,
            "HYPERPARAMETERS": SMALL,
            "FASTPATH": False,
            "RELOAD_POLL_SECONDS": 0,
        }
    ):
        feature_store_reset()
        predictor_install(None)
        yield tmp_path
        predictor_install(None)
        feature_store_reset()


def _sample(source: Path, tmp_path: Path, users: int) -> Path:
    """The first ``users`` shoppers of the Taobao development file (a small real sample)."""
    lines = source.read_text(encoding="utf-8").splitlines()
    keep = {line.split(",", 1)[0] for line in lines[1:]}
    chosen = set(sorted(keep, key=int)[:users])
    out = tmp_path / "taobao-sample.csv"
    out.write_text("\n".join([lines[0], *(row for row in lines[1:] if row.split(",", 1)[0] in chosen)]) + "\n")
    return out


def test_served_quality_agrees_with_the_offline_scores_of_the_served_artifacts(scratch, shared_data):
    events = _sample(shared_data / "taobao-userbehavior-dev" / "events.csv", scratch, 80)
    out = StringIO()
    report_path = scratch / "report.json"
    call_command(
        "evaluate_serving",
        "--events", str(events),
        "--later-days", "30",
        "--budget-ms", "10000",  # the measurement is about quality: no answer may fall back for time here
        "--json", str(report_path),
        stdout=out,
        stderr=StringIO(),
    )  # fmt: skip
    report = json.loads(report_path.read_text())
    assert report["test_users"] >= 50
    served = report["served"]
    assert sum(served["served_by"].values()) == report["test_users"]
    assert set(served["served_by"]) <= set(report["active"]) | {"prior"}
    skew = report["served_vs_offline"]
    assert skew["users"] == report["test_users"]  # every answer came from a registered ranker
    # served and offline are the same rankings: the paired difference is nil, not just within noise
    assert abs(skew["served"] - skew["offline"]) < 0.005
    lo, hi = skew["ndcg@5_diff_ci"]
    assert lo <= 0.0 <= hi
    # served within the offline interval of the ranker that served most
    main = max(served["served_by"], key=served["served_by"].get)
    low, high = report["offline"][main]["ndcg@5_ci"]
    assert low <= served["ndcg@5"] <= high
    # a month later the same cases are served again, and still agree with the replayed offline scores
    month = report["later"]["30d"]
    assert abs(month["served_vs_offline"]["served"] - month["served_vs_offline"]["offline"]) < 0.005
    assert set(month["by_gap"]) == {"months"}  # every visitor away 30 days or more
    assert "served - offline of the ranker that served" in out.getvalue()
    # the bar, for what is served: its paired difference from the protocol's best baseline on these cases
    versus = report["served_vs_best_baseline"]
    baselines = report["baselines"]
    assert versus["baseline"] == max(baselines, key=lambda name: baselines[name]["ndcg@5"])
    assert versus["ndcg@5_diff"] == pytest.approx(served["ndcg@5"] - baselines[versus["baseline"]]["ndcg@5"], abs=2e-4)
    lo, hi = versus["ndcg@5_diff_ci"]
    assert lo <= versus["ndcg@5_diff"] <= hi and versus["excludes_zero"] == (lo > 0 or hi < 0)
    assert f"served - best baseline ({versus['baseline']}), paired" in out.getvalue()


def test_evaluate_serving_refuses_a_database_that_holds_model_versions(scratch):
    from inference.registry import services

    services.model_version_register(algorithm="gbdt", version="gbdt-1", artifact_path="gbdt-1")
    with pytest.raises(CommandError, match="scratch database"):
        call_command("evaluate_serving", "--events", str(scratch), stdout=StringIO(), stderr=StringIO())

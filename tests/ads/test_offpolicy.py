"""Off-policy estimates: IPW recovers a known policy value from a uniform log; the command reports the real log."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from adsite.ads.offpolicy import generated_log, ipw_estimates

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "open-bandit-dataset-small"


def test_ipw_recovers_the_value_of_a_policy_from_a_uniform_log() -> None:
    ctr = [0.30, 0.10, 0.05, 0.02]
    actions, clicks, propensity = generated_log(n=40_000, n_items=4, ctr=ctr, seed=3)
    always_best = ipw_estimates(clicks=clicks, propensity=propensity, matches=actions == 0, seed=1, n_boot=500)
    always_worst = ipw_estimates(clicks=clicks, propensity=propensity, matches=actions == 3, seed=1, n_boot=500)
    for estimate in ("ipw", "snipw"):
        lo, hi = always_best[f"{estimate}_ci"]
        assert lo <= 0.30 <= hi
        assert always_worst[f"{estimate}_ci"][1] < lo  # the estimator tells the two policies apart
    assert abs(always_best["matched_rounds"] - 10_000) < 500


def test_ipw_of_a_policy_never_matching_the_log_is_zero() -> None:
    actions, clicks, propensity = generated_log(n=1000, n_items=2, ctr=[0.5, 0.5], seed=0)
    estimate = ipw_estimates(clicks=clicks, propensity=propensity, matches=np.zeros(1000, dtype=bool), n_boot=100)
    assert estimate["ipw"] == 0.0 and estimate["matched_rounds"] == 0


@pytest.mark.skipif(not (DATA / "random" / "men").exists(), reason="shared open-bandit data not present")
def test_offpolicy_eval_reports_the_model_beside_the_logged_policies(tmp_path: Path) -> None:
    out = tmp_path / "ope.json"
    call_command("offpolicy_eval", "--data", str(DATA), "--campaign", "men", "--json", str(out), stdout=StringIO())
    report = json.loads(out.read_text())
    policies = report["policies"]
    assert set(policies) == {"random (logged)", "bts (logged)", "click model, greedy (off-policy on the random log)"}
    model = policies["click model, greedy (off-policy on the random log)"]
    assert model["rounds"] == 10_000 and 0 < model["matched_rounds"] < 10_000
    assert model["ipw_ci"][0] <= model["ipw"] <= model["ipw_ci"][1]

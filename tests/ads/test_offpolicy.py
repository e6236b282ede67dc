"""Off-policy estimates: IPW recovers a known policy value from a uniform log; the ad server's own policy is
what is judged; the command reports the real log."""

from __future__ import annotations

import csv
import gzip
import json
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
from django.core.management import call_command

from adsite.ads.offpolicy import (
    ADSITE_POLICY_KEY,
    bandit_log_read,
    generated_log,
    ipw_estimates,
    item_campaigns,
    offpolicy_report,
    visitor_lifts,
)
from adsite.ads.scoring import Knobs


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


def test_offpolicy_eval_reports_the_ad_server_s_policy_beside_the_model_and_the_logged_policies(
    tmp_path: Path, shared_data: Path
) -> None:
    out = tmp_path / "ope.json"
    call_command("offpolicy_eval", "--data", str(shared_data / "open-bandit-dataset-small"), "--campaign", "men",
                 "--draws", "50", "--json", str(out), stdout=StringIO())
    report = json.loads(out.read_text())
    policies = report["policies"]
    assert set(policies) == {"random (logged)", "bts (logged)", "click model, greedy (off-policy on the random log)",
                             ADSITE_POLICY_KEY}
    model = policies["click model, greedy (off-policy on the random log)"]
    assert model["rounds"] == 10_000 and 0 < model["matched_rounds"] < 10_000
    assert model["ipw_ci"][0] <= model["ipw"] <= model["ipw_ci"][1]
    adsite = policies[ADSITE_POLICY_KEY]
    assert adsite["ipw_ci"][0] <= adsite["ipw"] <= adsite["ipw_ci"][1]
    # a sampling policy gives most logged rounds some weight (a greedy one matches 1 in 34)
    assert adsite["matched_rounds"] > 10 * model["matched_rounds"]
    assert report["adsite_policy"]["rounds_with_history"] > 0
    versus = report["adsite_vs_bts"]
    lo, hi = versus["ipw_minus_bts_ci"]
    assert lo <= versus["ipw_minus_bts"] <= hi and versus["ipw_wins"] == (lo > 0)


def _bandit_files(root: Path, *, ctr: list[float], rounds: int, seed: int, affinity_to: tuple[int, ...] = ()) -> Path:
    """An Open Bandit folder (random and bts logs, one slot, uniform logging over the items) with known
    click rates per item; item k's categories: its own first feature, the others shared by all. Every other
    round's visitor has clicked one of ``affinity_to`` before (in turn)."""
    rng = np.random.default_rng(seed)
    n_items = len(ctr)
    for policy in ("random", "bts"):
        folder = root / policy / "all"
        folder.mkdir(parents=True)
        with gzip.open(folder / "item_context.csv.gz", "wt", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["", "item_id", "item_feature_0", "item_feature_1", "item_feature_2", "item_feature_3"])
            for k in range(n_items):
                writer.writerow([k, k, 0.0, f"{k:x}" * 32, "a" * 32, "b" * 32])
        with gzip.open(folder / "all.csv.gz", "wt", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["", "timestamp", "item_id", "position", "click", "propensity_score",
                             *(f"user_feature_{j}" for j in range(4)), *(f"user-item_affinity_{k}" for k in range(n_items))])
            for i in range(rounds):
                item = int(rng.integers(0, n_items))
                affinity = [0.0] * n_items
                if affinity_to and i % 2 == 0:
                    affinity[affinity_to[(i // 2) % len(affinity_to)]] = 3.0
                writer.writerow([i, f"2019-11-24 00:00:{i % 60:02d}+00:00", item, 1, int(rng.random() < ctr[item]),
                                 1.0 / n_items, "u0", "u1", "u2", f"u{i % 3}", *affinity])
    return root


def test_the_ad_server_s_policy_is_judged_off_policy_and_beats_a_log_that_ignores_clicks(tmp_path: Path) -> None:
    data = _bandit_files(tmp_path, ctr=[0.30, 0.02, 0.02, 0.02, 0.02, 0.02], rounds=4000, seed=5)
    report = offpolicy_report(data_dir=data, campaign="all", draws=100)
    adsite = report["policies"][ADSITE_POLICY_KEY]
    # the site learns from one half's clicks that item 0 is the one clicked, and shows it on the other half
    assert adsite["ipw_ci"][0] > report["policies"]["random (logged)"]["ctr_ci"][1]
    assert adsite["ipw_ci"][0] > 0.2  # close to item 0's 0.30: it is what the site shows
    # the bts file here was logged uniformly too: the site's policy wins against it, and the report says so
    assert report["adsite_vs_bts"]["ipw_wins"] and report["adsite_vs_bts"]["ipw_minus_bts_ci"][0] > 0
    assert report["adsite_vs_bts"]["verdict"].startswith("IPW wins")


def test_the_evaluated_policy_is_the_ad_server_s_own_scoring_with_the_site_s_settings(tmp_path: Path, settings: Any) -> None:
    data = _bandit_files(tmp_path, ctr=[0.30, 0.02, 0.02, 0.02, 0.02, 0.02], rounds=4000, seed=5)
    report = offpolicy_report(data_dir=data, campaign="all", draws=100)
    learned, random_ctr = report["policies"][ADSITE_POLICY_KEY], report["policies"]["random (logged)"]["ctr"]
    # an ads setting of the site: a quality prior so heavy that clicks cannot move it (every creative alike)
    settings.ADS = {"QUALITY_PRIOR_SHAPE": 1e9}
    unlearned = offpolicy_report(data_dir=data, campaign="all", draws=100)["policies"][ADSITE_POLICY_KEY]
    assert unlearned["ipw_ci"][0] <= random_ctr <= unlearned["ipw_ci"][1]  # as good as showing any item
    assert unlearned["ipw_ci"][1] < learned["ipw_ci"][0]


def test_a_visitor_s_logged_affinity_reaches_the_ad_server_s_interest_lift(tmp_path: Path) -> None:
    data = _bandit_files(tmp_path, ctr=[0.05] * 4, rounds=200, seed=1, affinity_to=(2, 3))
    campaigns = item_campaigns(data / "random" / "all" / "item_context.csv.gz")
    codes: dict[str, dict[str, int]] = {}
    log = bandit_log_read(data / "random" / "all" / "all.csv.gz", codes=codes, n_items=4)
    [(visitor, lifts)] = visitor_lifts([log], campaigns, Knobs.read())
    assert (visitor[::2] > 0).all() and (visitor[1::2] == 0).all()  # rounds with a history, and without
    reader = lifts[visitor[0]]  # round 0's visitor clicked item 2 before; the population clicked 2 and 3
    assert reader[2] > 1.0 > reader[3]  # the item it clicked is lifted, the one others clicked lowered
    assert (lifts[0] == 1.0).all()  # a visitor without history: the population's interests, no lift

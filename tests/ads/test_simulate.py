"""manage.py simulate: seeds what it needs, runs the four policies over the same visitors, writes the JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from adsite.ads.simulation import WORLDS

pytestmark = pytest.mark.django_db


@pytest.mark.services  # also on PostgreSQL and Redis: each page used to close the run's database connection
def test_simulate_compares_four_policies_over_the_same_visitors(tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    out = tmp_path / "sim.json"
    call_command(
        "simulate", "--visitors", "3", "--pages", "2", "--history", "0", "--seed", "5", "--json", str(out), verbosity=0
    )
    report = json.loads(out.read_text())
    assert set(report["policies"]) == {"random", "untargeted", "adsite", "oracle"}
    assert report["visitors"] == 3 and report["seed"] == 5
    impressions = {row["impressions"] for row in report["policies"].values()}
    assert len(impressions) == 1 and impressions.pop() == 3 * 2 * 4  # same pages, four slots per article
    for row in report["policies"].values():
        lo, hi = row["ctr_ci"]
        assert 0.0 <= lo <= row["ctr"] <= hi <= 1.0
    for key in ("adsite_share_of_oracle_lift_ci", "adsite_share_of_oracle_lift_expected_ci"):
        assert report[key] is None or report[key][0] <= report[key][1]


def test_the_share_of_the_oracle_lift_is_bootstrapped_over_the_same_visitors_for_every_policy() -> None:
    import numpy as np

    from adsite.ads.simulation import PolicyResult, _share_ci

    # visitor v: 100 slots; random 2 + v clicks, adsite 4 + v, oracle 6 + v: adsite has half the
    # oracle's lift for every visitor, so every paired resample says 0.5 (an unpaired one would not)
    def policy(extra: int) -> PolicyResult:
        per = [(extra + v, 100) for v in range(20)]
        return PolicyResult(per_visitor=per, per_visitor_expected=[float(c) for c, _ in per])

    results = {"random": policy(2), "untargeted": policy(2), "adsite": policy(4), "oracle": policy(6)}
    idx = np.random.default_rng(0).integers(0, 20, size=(200, 20))
    assert _share_ci(results, idx, "clicks") == [0.5, 0.5]
    assert _share_ci(results, idx, "expected") == [0.5, 0.5]


def test_simulate_history_gives_every_policy_the_same_creative_statistics(tmp_path: Path, settings: Any) -> None:
    from adsite.ads import simulation
    from adsite.ads.accounting import MemoryLedger

    settings.MEDIA_ROOT = tmp_path / "media"
    started: dict[str, dict[int, Any]] = {}
    run_policy = simulation._run_policy

    def spy(*, book: MemoryLedger | None = None, tag: str = "", **kwargs: Any) -> Any:
        if book is not None:
            started[tag] = simulation._creative_statistics(book)
        return run_policy(book=book, tag=tag, **kwargs)

    out = tmp_path / "sim.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(simulation, "_run_policy", spy)
        call_command("simulate", "--visitors", "2", "--pages", "2", "--history", "3", "--seed", "5", "--json", str(out), verbosity=0)
    report = json.loads(out.read_text())
    assert report["history"]["visitors"] == 3 and report["history"]["impressions"] == 3 * (2 + 3) * 4
    assert started["history"] == {}  # the history starts from nothing
    measured = [started[p] for p in ("random", "untargeted", "adsite", "oracle")]
    assert measured[0] and all(stats == measured[0] for stats in measured)
    assert sum(st.impressions for st in measured[0].values()) == report["history"]["impressions"]
    # the repeat statistics too: every visitor's impressions were counted under their repeat bucket (the
    # demo's caps allow 4 an hour, so a campaign shown on every one of 5 pages went through 1st to 4th+)
    assert sum(sum(st.repeat_expected) for st in measured[0].values()) > 0
    assert sum(st.repeat_expected[0] for st in measured[0].values()) > 0
    assert len(report["history"]["wear_out"]) == 4 and report["history"]["wear_out"][0] == 1.0


def test_the_logistic_world_tires_of_repeated_campaigns_and_discounts_lower_slots() -> None:
    import random
    from types import SimpleNamespace

    from adsite.ads.simulation import SimulationSpec, _Visitor

    campaign = SimpleNamespace(id=1, interests=(("sports", 1.0),))
    creative = SimpleNamespace(id=9)
    visitor = _Visitor(SimulationSpec(world="logistic"), {"sports": 0.5, "news": 0.5}, random.Random(0))
    fresh = visitor.click_probability(campaign, creative)
    assert visitor.click_probability(campaign, creative, position=3) == pytest.approx(fresh / 2)
    visitor.after_page("sports", [1, 1])
    assert visitor.click_probability(campaign, creative) == pytest.approx(fresh * 0.8**2)
    # a threshold in interest, not a proportion: half the interest gives far less than half the clicks
    half = _Visitor(SimulationSpec(world="logistic"), {"sports": 0.25, "news": 0.75}, random.Random(0))
    assert half.click_probability(campaign, creative) < fresh / 2


def test_in_the_drift_world_interests_move_toward_what_the_visitor_reads() -> None:
    import random

    from adsite.ads.simulation import SimulationSpec, _Visitor

    visitor = _Visitor(SimulationSpec(world="drift"), {"sports": 0.9, "news": 0.1}, random.Random(1))
    for _ in range(6):
        visitor.after_page("news", [])
    assert visitor.profile["news"] > visitor.profile["sports"]
    assert sum(visitor.profile.values()) == pytest.approx(1.0)
    still = _Visitor(SimulationSpec(), {"sports": 0.9, "news": 0.1}, random.Random(1))
    still.after_page("news", [])
    assert still.profile == {"sports": 0.9, "news": 0.1}


@pytest.mark.parametrize("world", WORLDS)
def test_in_every_world_the_oracle_beats_random_and_the_report_says_which_world(world: str, tmp_path: Path, settings: Any) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    out = tmp_path / "sim.json"
    call_command(
        "simulate", "--visitors", "4", "--pages", "3", "--warmup", "1", "--history", "0", "--world", world,
        "--json", str(out), verbosity=0,
    )
    report = json.loads(out.read_text())
    assert report["world"] == world and report["parameters"]["world"] == world
    assert {row["impressions"] for row in report["policies"].values()} == {4 * 3 * 4}
    # the world's hidden click model is the oracle's: it fills the same slots with likelier clicks than random
    # (the expected CTR, the hidden probabilities of the slots shown: no click noise)
    assert report["policies"]["oracle"]["expected_ctr"] > report["policies"]["random"]["expected_ctr"]
    assert report["adsite_share_of_oracle_lift_expected"] is not None  # so every world reports adsite's share


def test_simulated_visitors_are_rate_limited_as_people_each_from_an_address_of_its_own(tmp_path: Path, settings: Any) -> None:
    # 3 visitors x 5 pages (3 warm-up + 2) x 4 policies = 60 pages: far over 25 from one address, while
    # each visitor's own address reads 20; the site's limits stay on (a 429 would stop the run)
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "ENABLED": True, "PERIOD_S": 3600.0,
                            "SCOPES": {**settings.RATE_LIMITS.get("SCOPES", {}), "page": (25, 240)}}
    out = tmp_path / "sim.json"
    call_command(
        "simulate", "--visitors", "3", "--pages", "2", "--history", "0", "--seed", "11", "--json", str(out), verbosity=0
    )
    report = json.loads(out.read_text())
    assert {row["impressions"] for row in report["policies"].values()} == {3 * 2 * 4}


def test_a_page_the_site_refuses_stops_the_simulation_instead_of_counting_as_a_page_without_ads(
    tmp_path: Path, settings: Any
) -> None:
    from adsite.ads.simulation import SimulationError

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "ENABLED": True, "PERIOD_S": 3600.0,
                            "SCOPES": {**settings.RATE_LIMITS.get("SCOPES", {}), "page": (2, 240)}}
    with pytest.raises(SimulationError, match="answered 429"):
        call_command("simulate", "--visitors", "1", "--pages", "2", "--history", "0", "--seed", "12",
                     "--json", str(tmp_path / "sim.json"), verbosity=0)


def test_the_simulation_s_ads_settings_hold_only_while_its_platform_is_installed(settings: Any) -> None:
    from adsite.ads.conf import ads_setting
    from adsite.ads.simulation import SIMULATION_ADS
    from adsite.platform import platform_use, platform_with

    settings.ADS = {**settings.ADS, "PACING": True, "BUDGET_MS": 10.0}
    previous = platform_use(platform_with(ads_settings=SIMULATION_ADS))
    try:
        assert ads_setting("PACING") is False and ads_setting("BUDGET_MS") == 1000.0
        assert ads_setting("PACING_SLACK") == settings.ADS.get("PACING_SLACK", 0.05)  # the rest: the site's
    finally:
        platform_use(previous)
    assert ads_setting("PACING") is True and ads_setting("BUDGET_MS") == 10.0


def test_simulate_runs_on_a_production_configured_site_that_redirects_plain_http(tmp_path: Path, settings: Any) -> None:
    """Outside DEBUG the site redirects plain HTTP to HTTPS (``SECURE_SSL_REDIRECT``): the simulated browsers
    ask for the pages over HTTPS, as a visitor's browser would, instead of stopping at the 301."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SECURE_SSL_REDIRECT = True
    out = tmp_path / "sim.json"
    call_command("simulate", "--visitors", "2", "--pages", "2", "--history", "0", "--seed", "7", "--json", str(out),
                 verbosity=0)
    report = json.loads(out.read_text())
    assert {row["impressions"] for row in report["policies"].values()} == {2 * 2 * 4}

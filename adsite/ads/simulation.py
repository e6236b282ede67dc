"""The lift simulation: simulated visitors browse the demo site through its real HTTP endpoints
(its WSGI application, called in this process by an HTTP client per visitor).

Each visitor has a hidden interest profile (Dirichlet over the categories). Per page view the visitor
picks a category by that profile and opens one of its articles (``GET /article/<slug>/``, which
records the page view and fills the placements through ``ads_select``); every ad slot rendered is
seen (an ``ad_impression`` event in the tracker's format to ``POST /collect``) and clicked with the
hidden probability

    p = min(0.5, BASE_CTR x appeal(creative) x (FLOOR + SLOPE x h)),

h being the visitor's hidden interest in the ad's categories (campaign weights), appeal a hidden
per-creative quality in [0.6, 1.4]; a click follows the signed ``/c/<token>`` link. House ads are
clicked with probability BASE_CTR x FLOOR.

History (``history`` visitors, 0 = none): a site that has run for a while knows its creatives' click
statistics. Before the measured runs, ``history`` other visitors (their own hidden profiles, same
distribution) browse with adsite's policy; the creatives' statistics they leave (impressions,
clicks, exposure, repeat statistics; no spend, no frequency counters) start every measured policy's ledger, so the
policies that read statistics (untargeted, adsite) start from the same knowledge and random and
oracle ignore it. Four policies then run over the same visitors and seeds, each from that ledger
(or an empty one) and its own visitor ids (features start from zero):
``random`` (uniform among eligible ads), ``untargeted`` (best overall observed click rate),
``adsite`` (``ads_select``) and ``oracle`` (expected value with the hidden probability). Pacing is off
(the simulation compresses days into minutes; it measures targeting, not pacing).

Worlds (``world``): the click model above is ``default``, the very form the selector assumes (appeal x
interest). Two more, of other shapes, judge the selector on terms it was not built on (its constants
were fixed before they existed):

- ``logistic``: p = sigmoid(LOGIT_BASE + LOGIT_SLOPE x h + ln appeal) x position bias (the page's
  first slot 1, then 1/sqrt(1 + slot)) x fatigue (FATIGUE^k after the visitor has seen the campaign k
  times): interest matters through a threshold, not in proportion, and repeats wear out;
- ``drift``: the default click form, but the visitor's interests move within the visit: after each page
  the profile moves DRIFT_READ toward the category just read, and with probability DRIFT_JUMP a new
  interest (a category drawn uniformly) takes DRIFT_JUMP_WEIGHT of it; browsing and clicks follow the
  current profile, which the oracle knows and adsite must infer from the pages.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from adsite.ads.accounting import REPEAT_BUCKETS, MemoryLedger, Snapshot
from adsite.ads.catalog import CampaignView, CreativeView, catalog_current, catalog_invalidate
from adsite.ads.scoring import (
    ADSITE_POLICY,
    Candidate,
    Knobs,
    Quality,
    SelectionPolicy,
    bid_value,
    wear_out_factors,
)
from adsite.platform import Platform, platform_use

logger = logging.getLogger(__name__)

POLICIES = ("random", "untargeted", "adsite", "oracle")
WORLDS = ("default", "logistic", "drift")
LOGIT_BASE = -4.6  # sigmoid(-4.6) = 1%: an ad of no interest to the visitor
LOGIT_SLOPE = 8.0  # h = 0.3 -> about 10%, h = 0.5 -> about 35% (before position and fatigue)
FATIGUE = 0.8
DRIFT_READ = 0.25
DRIFT_JUMP = 0.15
DRIFT_JUMP_WEIGHT = 0.4
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
SLOT = re.compile(
    r'<div class="ad-slot[^"]*" data-placement="([\w-]+)" data-creative-id="([^"]*)" data-campaign-id="([^"]*)"'
    r'([^>]*)>.*?<a class="ad-slot__creative" href="([^"]*)"',
    re.S,
)
SERVE_ID = re.compile(r'data-serve-id="([^"]*)"')
# the ads settings the simulated site runs with: pacing off (the run compresses days into minutes and
# measures targeting), no sampled explanations, and a decision budget no busy machine overruns (the
# interests answer every page, as on a quiet server)
SIMULATION_ADS = {"PACING": False, "EXPLAIN_SAMPLE": 0.0, "BUDGET_MS": 1000.0}


@dataclass(frozen=True)
class SimulationSpec:
    # the defaults are the documented run (docs/quality.md): 300 measured visitors after a 2,000-visitor
    # history, about 5 minutes here; smaller runs are quicker and noisier
    visitors: int = 300
    pages: int = 10
    seed: int = 7
    concentration: float = 0.3  # Dirichlet alpha of the hidden profiles: lower = more focused visitors
    base_ctr: float = 0.05
    floor: float = 0.2
    slope: float = 4.0
    # pages each visitor reads before its ad slots count (its features exist by then; ads still run and are clicked)
    warmup: int = 3
    # earlier visitors (adsite's policy) whose creative statistics every measured policy starts from
    history: int = 2000
    # the hidden click model (WORLDS; see the module docstring)
    world: str = "default"


class RandomPolicy:
    """Uniform among the eligible ads (a random score ranks them)."""

    name = "random"
    reads_quality = False

    def click_probability(self, candidate: Candidate, *, quality: Quality | None, rng: random.Random, knobs: Knobs) -> float:
        return rng.random()

    def value(self, candidate: Candidate, p_click: float) -> float:
        return p_click


class UntargetedPolicy:
    """The best overall observed click rate (the CTR prior plus the creative's clicks), no interests."""

    name = "untargeted"
    reads_quality = False

    def click_probability(self, candidate: Candidate, *, quality: Quality | None, rng: random.Random, knobs: Knobs) -> float:
        clicks, impressions = candidate.clicks, candidate.impressions
        return (knobs.ctr_prior_clicks + min(clicks, impressions)) / (knobs.ctr_prior_impressions + impressions)

    def value(self, candidate: Candidate, p_click: float) -> float:
        return bid_value(candidate.campaign, p_click)


class OraclePolicy:
    """Expected value with the hidden click probability (the simulated visitors' own)."""

    name = "oracle"
    reads_quality = False

    def __init__(self, scorer: Callable[[str, CampaignView, CreativeView], float]) -> None:
        self._scorer = scorer

    def click_probability(self, candidate: Candidate, *, quality: Quality | None, rng: random.Random, knobs: Knobs) -> float:
        return self._scorer(candidate.user_id, candidate.campaign, candidate.creative)

    def value(self, candidate: Candidate, p_click: float) -> float:
        return bid_value(candidate.campaign, p_click)


@dataclass
class PolicyResult:
    impressions: int = 0
    clicks: int = 0
    per_visitor: list[tuple[int, int]] = field(default_factory=list)
    expected_clicks: float = 0.0  # sum of the hidden click probabilities of the counted slots
    per_visitor_expected: list[float] = field(default_factory=list)


def _hidden_interest(profile: dict[str, float], campaign: CampaignView) -> float:
    total = sum(w for _, w in campaign.interests)
    if not total:
        return sum(profile.values()) / max(len(profile), 1)
    return sum(w * profile.get(slug, 0.0) for slug, w in campaign.interests) / total


class _Visitor:
    """One simulated visitor in the spec's world: the current hidden profile, the campaigns seen."""

    def __init__(self, spec: SimulationSpec, profile: dict[str, float], rng: random.Random) -> None:
        if spec.world not in WORLDS:
            raise ValueError(f"unknown world {spec.world!r}: one of {', '.join(WORLDS)}")
        self.spec = spec
        self.profile = dict(profile)
        self.rng = rng
        self.seen: dict[int, int] = {}

    def click_probability(self, campaign: CampaignView, creative: CreativeView, position: int = 0) -> float:
        spec = self.spec
        if spec.world == "logistic":
            h = _hidden_interest(self.profile, campaign)
            z = LOGIT_BASE + LOGIT_SLOPE * h + math.log(_appeal(creative.id, spec.seed))
            fatigue = FATIGUE ** self.seen.get(campaign.id, 0)
            return min(0.5, fatigue / (1.0 + math.exp(-z)) / math.sqrt(1.0 + position))
        return _click_probability(spec, self.profile, campaign, creative)

    def house_probability(self, position: int) -> float:
        p = self.spec.base_ctr * self.spec.floor
        return p / math.sqrt(1.0 + position) if self.spec.world == "logistic" else p

    def after_page(self, category: str, shown: list[int]) -> None:
        for campaign_id in shown:
            self.seen[campaign_id] = self.seen.get(campaign_id, 0) + 1
        if self.spec.world != "drift":
            return
        profile = {c: (1.0 - DRIFT_READ) * w for c, w in self.profile.items()}
        profile[category] += DRIFT_READ
        if self.rng.random() < DRIFT_JUMP:
            jump = self.rng.choice(sorted(profile))
            profile = {c: (1.0 - DRIFT_JUMP_WEIGHT) * w for c, w in profile.items()}
            profile[jump] += DRIFT_JUMP_WEIGHT
        self.profile = profile


def _appeal(creative_id: int, seed: int) -> float:
    return 0.6 + 0.8 * random.Random(f"{seed}:{creative_id}").random()


def simulate(*, spec: SimulationSpec, articles: dict[str, list[str]], progress: Any = None) -> dict[str, Any]:
    """Run the four policies; returns the JSON-able report."""
    rng = np.random.default_rng(spec.seed)
    categories = sorted(c for c in articles if articles[c])
    profiles = [dict(zip(categories, rng.dirichlet([spec.concentration] * len(categories)), strict=True)) for _ in range(spec.visitors)]
    results: dict[str, PolicyResult] = {}
    catalog_invalidate()
    statistics: dict[int, _Statistics] = {}
    history: dict[str, Any] = {"visitors": spec.history}
    if spec.history:
        history_rng = np.random.default_rng([spec.seed, 1])  # other visitors than the measured ones
        history_profiles = [dict(zip(categories, history_rng.dirichlet([spec.concentration] * len(categories)), strict=True))
                            for _ in range(spec.history)]
        book = MemoryLedger(None)
        _run_policy(policy="adsite", spec=spec, profiles=history_profiles, articles=articles, progress=progress,
                    book=book, tag="history")
        statistics = _creative_statistics(book)
        per_creative = sorted(st.clicks for st in statistics.values())
        history.update(impressions=sum(st.impressions for st in statistics.values()), clicks=sum(per_creative),
                       median_clicks_per_creative=per_creative[len(per_creative) // 2] if per_creative else 0,
                       wear_out=_wear_out(statistics))
    for policy in POLICIES:
        book = MemoryLedger(None)
        for creative_id, st in statistics.items():
            book.statistics_add(creative_id=creative_id, impressions=st.impressions, clicks=st.clicks,
                                extra_exposure_micros=st.extra_exposure_micros, repeat_expected=st.repeat_expected,
                                repeat_clicks=st.repeat_clicks)
        results[policy] = _run_policy(policy=policy, spec=spec, profiles=profiles, articles=articles, progress=progress,
                                      book=book, tag=policy)
    report: dict[str, Any] = {"policies": {}, "world": spec.world, "visitors": spec.visitors, "pages": spec.pages, "seed": spec.seed,
                              "history": history, "parameters": spec.__dict__}
    boot = np.random.default_rng(spec.seed + 1)
    for policy, result in results.items():
        per = np.array(result.per_visitor, dtype=float)  # (clicks, impressions) per visitor
        ctr = result.clicks / result.impressions if result.impressions else 0.0
        idx = boot.integers(0, len(per), size=(1000, len(per)))
        samples = per[idx, 0].sum(axis=1) / np.maximum(per[idx, 1].sum(axis=1), 1)
        lo, hi = np.quantile(samples, [0.025, 0.975])
        report["policies"][policy] = {"ctr": round(ctr, 5), "ctr_ci": [round(float(lo), 5), round(float(hi), 5)],
                                      "impressions": result.impressions, "clicks": result.clicks,
                                      "expected_ctr": round(result.expected_clicks / max(result.impressions, 1), 5)}
    random_ctr = report["policies"]["random"]["ctr"]
    for policy in POLICIES:
        report["policies"][policy]["lift_over_random"] = round(report["policies"][policy]["ctr"] - random_ctr, 5)
    oracle_lift = report["policies"]["oracle"]["lift_over_random"]
    report["adsite_share_of_oracle_lift"] = (
        round(report["policies"]["adsite"]["lift_over_random"] / oracle_lift, 4) if oracle_lift > 0 else None
    )
    expected_lift = report["policies"]["oracle"]["expected_ctr"] - report["policies"]["random"]["expected_ctr"]
    report["adsite_share_of_oracle_lift_expected"] = (
        round((report["policies"]["adsite"]["expected_ctr"] - report["policies"]["random"]["expected_ctr"]) / expected_lift, 4)
        if expected_lift > 0 else None
    )
    # Paired bootstrap over visitors (every policy saw the same visitors, so resample them together):
    # how far the share of the oracle's lift itself moves with who the visitors were and the click noise.
    share_rng = np.random.default_rng([spec.seed, 2])
    pairs: np.ndarray | None = share_rng.integers(0, spec.visitors, size=(1000, spec.visitors)) if spec.visitors else None
    for key, column in (("adsite_share_of_oracle_lift_ci", "clicks"), ("adsite_share_of_oracle_lift_expected_ci", "expected")):
        report[key] = _share_ci(results, pairs, column) if pairs is not None else None
    report["bar_met"] = bool(
        report["adsite_share_of_oracle_lift"] is not None and report["adsite_share_of_oracle_lift"] >= 0.8
        and report["policies"]["adsite"]["ctr"] > report["policies"]["untargeted"]["ctr"]
    )
    return report


def _share_ci(results: dict[str, PolicyResult], idx: np.ndarray, column: str) -> list[float] | None:
    """95% interval of (adsite - random) / (oracle - random) over bootstrap samples of the visitors."""
    ctr = {}
    for policy, result in results.items():
        impressions = np.array([i for _, i in result.per_visitor], dtype=float)
        hits = np.array([c for c, _ in result.per_visitor] if column == "clicks" else result.per_visitor_expected, dtype=float)
        ctr[policy] = hits[idx].sum(axis=1) / np.maximum(impressions[idx].sum(axis=1), 1)
    oracle_lift = ctr["oracle"] - ctr["random"]
    share = np.where(oracle_lift > 0, (ctr["adsite"] - ctr["random"]) / np.where(oracle_lift > 0, oracle_lift, 1), np.nan)
    if np.isnan(share).all():
        return None
    lo, hi = np.nanquantile(share, [0.025, 0.975])
    return [round(float(lo), 4), round(float(hi), 4)]


@dataclass(frozen=True)
class _Statistics:
    """One creative's statistics as a ledger counted them (what the history hands the measured runs)."""

    impressions: int
    clicks: int
    extra_exposure_micros: int
    repeat_expected: list[int]
    repeat_clicks: list[int]


def _creative_statistics(book: MemoryLedger) -> dict[int, _Statistics]:
    """The statistics of each creative of the catalog that ``book`` counted impressions of."""
    ids = list(catalog_current().creatives_by_id)
    snap = book.snapshot(campaign_ids=[], creative_ids=ids, user_id="", now=time.time())
    return {
        c: _Statistics(snap.impressions[c], snap.clicks[c], snap.extra_exposure[c], *book.repeat_statistics(creative_id=c))
        for c in ids if snap.impressions[c]
    }


def _wear_out(statistics: dict[int, _Statistics]) -> list[float]:
    """The wear-out factors (``scoring.wear_out_factors``) the history's statistics teach, for the report."""
    buckets = range(REPEAT_BUCKETS)
    snap = dataclasses.replace(
        Snapshot.empty(),
        repeat_expected={b: sum(st.repeat_expected[b] for st in statistics.values()) for b in buckets},
        repeat_clicks={b: sum(st.repeat_clicks[b] for st in statistics.values()) for b in buckets},
    )
    return [round(f, 4) for f in wear_out_factors(snap, dataclasses.replace(Knobs.read(), wear_out=True))]


def _run_policy(
    *,
    policy: str,
    spec: SimulationSpec,
    profiles: list[dict[str, float]],
    articles: dict[str, list[str]],
    progress: Any,
    book: MemoryLedger | None = None,
    tag: str = "",
) -> PolicyResult:
    result = PolicyResult()
    tag = tag or policy
    users = {f"sim-{spec.seed}-{tag}-{uuid.uuid4().hex[:6]}-{v}": v for v in range(len(profiles))}
    by_user = list(users)
    visitors: dict[str, _Visitor] = {}

    def oracle(user_id: str, campaign: CampaignView, creative: CreativeView) -> float:
        # the visitor's current hidden state (drifted profile, campaigns seen); the position bias is
        # the same for every ad of a slot, so it does not change the oracle's choice
        visitor = visitors.get(user_id)
        if visitor is None:
            return _click_probability(spec, {}, campaign, creative)
        return visitor.click_probability(campaign, creative)

    policies: dict[str, SelectionPolicy] = {
        "adsite": ADSITE_POLICY, "random": RandomPolicy(), "untargeted": UntargetedPolicy(), "oracle": OraclePolicy(oracle),
    }
    # the pages decide with this run's policy, ledger and settings: installed as the process's composition root
    previous = platform_use(Platform(
        ledger_backend=book if book is not None else MemoryLedger(None),
        page_policy=policies[policy],
        page_rng=random.Random(spec.seed),
        ads_settings=SIMULATION_ADS,
    ))
    site = WSGIHandler()
    # as Django's test client does: the pages are served in this thread, on this run's own database connection
    # (in a test, inside its transaction), which the request signals would close after every page; closed
    # inside a transaction (services mode), the next page's query failed with "the connection is closed"
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        for v, profile in enumerate(profiles):
            clicks_rng = random.Random(f"{spec.seed}:{v}:clicks")
            browse_rng = random.Random(f"{spec.seed}:{v}:browse")
            user_id = by_user[v]
            visitor = visitors[user_id] = _Visitor(spec, profile, random.Random(f"{spec.seed}:{v}:world"))
            with _browser(site, user_id=user_id, number=v) as client:
                visitor_clicks = visitor_impressions = 0
                visitor_expected = 0.0
                for page in range(spec.warmup + spec.pages):
                    counted = page >= spec.warmup
                    cats, weights = zip(*visitor.profile.items(), strict=True)
                    category = browse_rng.choices(cats, weights=weights)[0]
                    slug = browse_rng.choice(articles[category])
                    html = _answered(client.get(f"/article/{slug}/"), 200).text
                    catalog = catalog_current()
                    events = []
                    shown: list[int] = []
                    for position, (placement, creative_id, campaign_id, attributes, href) in enumerate(SLOT.findall(html)):
                        serve = SERVE_ID.search(attributes)
                        visitor_impressions += counted
                        creative = catalog.creatives_by_id.get(int(creative_id)) if creative_id.isdigit() else None
                        campaign = catalog.campaigns_by_id.get(int(campaign_id)) if campaign_id.isdigit() else None
                        if creative is None or campaign is None or campaign.tier == "house":
                            p = visitor.house_probability(position)
                        else:
                            p = visitor.click_probability(campaign, creative, position)
                            shown.append(campaign.id)
                        if counted:
                            visitor_expected += p
                        events.append(_impression_event(user_id, placement, creative_id, campaign_id, f"{client.base_url}article/{slug}/",
                                                        slug, serve.group(1) if serve else ""))
                        if clicks_rng.random() < p:
                            visitor_clicks += counted
                            if href.startswith("/c/"):
                                _answered(client.get(href), 302)
                    if events:
                        _answered(client.post("/collect", content=json.dumps({"events": events}),
                                              headers={"Content-Type": "text/plain"}), 200, 202, 204)
                    visitor.after_page(category, shown)
                result.clicks += visitor_clicks
                result.impressions += visitor_impressions
                result.per_visitor.append((visitor_clicks, visitor_impressions))
                result.expected_clicks += visitor_expected
                result.per_visitor_expected.append(visitor_expected)
                if progress is not None:
                    progress(tag, v)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
        platform_use(previous)
    return result


def _click_probability(spec: SimulationSpec, profile: dict[str, float], campaign: CampaignView, creative: CreativeView) -> float:
    h = _hidden_interest(profile, campaign)
    return min(0.5, spec.base_ctr * _appeal(creative.id, spec.seed) * (spec.floor + spec.slope * h))


class SimulationError(RuntimeError):
    """The site did not answer a simulated visitor as it answers a browser: the run's figures would be wrong."""


def _answered(response: httpx.Response, *expected: int) -> httpx.Response:
    if response.status_code not in expected:
        raise SimulationError(f"{response.request.method} {response.request.url.path} answered {response.status_code}"
                              f" (expected {' or '.join(map(str, expected))})")
    return response


def _site_host() -> str:
    """A host name the site answers to (the first of ALLOWED_HOSTS that is a plain name)."""
    return next((host for host in settings.ALLOWED_HOSTS if host and host[0] not in ".*"), "localhost")


def _browser(site: WSGIHandler, *, user_id: str, number: int) -> httpx.Client:
    """An HTTP client that calls the site's WSGI application in this process, as one visitor's browser:
    a browser's User-Agent, the visitor's identity cookie and an address of its own (10.x.y.1, its own
    /24), so the site's rate limits count each simulated visitor as they count a person. Over HTTPS, as a
    browser reaches a production site (outside DEBUG the site redirects plain HTTP: ``SECURE_SSL_REDIRECT``)."""
    address = f"10.{(number >> 8) & 255}.{number & 255}.1"
    client = httpx.Client(
        transport=httpx.WSGITransport(app=site, remote_addr=address), base_url=f"https://{_site_host()}",
        headers={"User-Agent": BROWSER}, follow_redirects=False,
    )
    client.cookies.set("adsite_uid", user_id)
    return client


def _impression_event(user_id: str, placement: str, creative_id: str, campaign_id: str, url: str, slug: str,
                      serve_id: str) -> dict[str, Any]:
    ad = {"creative_id": creative_id, "campaign_id": campaign_id, "placement": placement}
    if serve_id:
        ad["serve_id"] = serve_id
    return {
        "event_id": str(uuid.uuid4()), "type": "ad_impression", "user_id": user_id, "session_id": f"{user_id}-s",
        "ts": int(time.time() * 1000), "url": url, "item_id": slug,
        "ad": ad,
        "properties": {"viewable": True, "visible_ms": 1000},
    }

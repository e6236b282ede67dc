"""Off-policy check of a click model on real logs (Open Bandit Dataset, small).

Promises: ``offpolicy_report(data_dir=...)`` trains a click model (LightGBM, binary) on one half of
the uniformly random logging policy's impressions and evaluates the greedy policy "show the item the
model scores highest for this visitor and position" on the other half (two-fold cross-fitting, so
every logged round is evaluated once by a model that never saw it) with inverse propensity
weighting (IPW) and self-normalised IPW (SNIPW); the logged policies (random, Bernoulli Thompson
sampling) are measured on-policy (their mean click). Every figure comes with a 95% bootstrap
interval over logged rounds. ``ipw_estimates`` is the estimator alone (tested on a generated log).

The ad server's own click model is judged the same way (``adsite_policy_probabilities``): each item
becomes a CPC campaign with one creative, its three hashed item features its interest categories; a
round's visitor history is its user-item affinity (past clicks per item) replayed as click events
through the feature code and the serving prior (``inference.api.prior_interests_replay``); the
creatives' statistics (impressions, clicks, exposure) are the training half's, read by
``quality_posteriors``; and every candidate is scored by ``ADSITE_POLICY`` with the site's ``Knobs``,
ranked as ``ads_select`` ranks them (tier, expected value, creative id), the best filling the first
slot. That policy samples (Thompson), so its probability of the logged item at the logged slot is
counted over repeated draws and weighs the round (IPW with a stochastic policy); the Bernoulli-TS
policy that logged the other file is its comparator, with a bootstrap interval of the difference.
"""

from __future__ import annotations

import csv
import gzip
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from adsite.ads.accounting import Snapshot
from adsite.ads.catalog import TIER_RANK, CampaignView, CreativeView
from adsite.ads.conf import ads_setting
from adsite.ads.scoring import (
    ADSITE_POLICY,
    EXPOSURE_UNIT,
    Candidate,
    Knobs,
    interest_lift,
    quality_posteriors,
    weighted_score,
)

USER_FEATURES = ("user_feature_0", "user_feature_1", "user_feature_2", "user_feature_3")
ITEM_FEATURES = ("item_feature_1", "item_feature_2", "item_feature_3")


@dataclass(frozen=True)
class BanditLog:
    item: np.ndarray  # int, the logged action
    position: np.ndarray  # int
    click: np.ndarray  # 0/1
    propensity: np.ndarray  # the logging policy's probability of the logged action
    user: np.ndarray  # int codes [n, len(USER_FEATURES)]
    affinity: np.ndarray  # float [n, n_items] past clicks of this visitor per item


def _read_csv(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


def bandit_log_read(path: Path, *, codes: dict[str, dict[str, int]], n_items: int) -> BanditLog:
    rows = _read_csv(path)
    user = np.array(
        [[codes.setdefault(f, {}).setdefault(r[f], len(codes[f])) for f in USER_FEATURES] for r in rows], dtype=np.int64
    )
    affinity = np.array([[float(r.get(f"user-item_affinity_{i}", 0.0) or 0.0) for i in range(n_items)] for r in rows])
    return BanditLog(
        item=np.array([int(r["item_id"]) for r in rows]),
        position=np.array([int(r["position"]) for r in rows]),
        click=np.array([int(r["click"]) for r in rows], dtype=float),
        propensity=np.array([float(r["propensity_score"]) for r in rows]),
        user=user,
        affinity=affinity,
    )


def _item_matrix(path: Path) -> np.ndarray:
    rows = _read_csv(path)
    rows.sort(key=lambda r: int(r["item_id"]))
    codes: dict[str, dict[str, int]] = {}
    return np.array(
        [[float(r["item_feature_0"])] + [codes.setdefault(f, {}).setdefault(r[f], len(codes[f])) for f in ITEM_FEATURES]
         for r in rows]
    )


def _design(log: BanditLog, rows: np.ndarray, items: np.ndarray, item_features: np.ndarray) -> np.ndarray:
    """One row per (logged round, candidate item): user codes, position, item features, affinity to it."""
    return np.column_stack([
        log.user[rows], log.position[rows], item_features[items], log.affinity[rows, items], items,
    ]).astype(float)


def _fit(x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    import lightgbm as lgb

    categorical = [0, 1, 2, 3, 5 + 1, 5 + 2, 5 + 3]  # user codes, item hashed features
    params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 4, "min_data_in_leaf": 100,
              "lambda_l2": 10.0, "verbose": -1, "seed": seed, "num_threads": 1, "cat_smooth": 50.0}
    data = lgb.Dataset(x, label=y, categorical_feature=categorical, free_raw_data=False)
    return lgb.train(params, data, num_boost_round=100)


def greedy_actions(model: Any, log: BanditLog, rows: np.ndarray, item_features: np.ndarray) -> np.ndarray:
    """The item the model scores highest, for each round in ``rows``."""
    n_items = len(item_features)
    rep = np.repeat(rows, n_items)
    cand = np.tile(np.arange(n_items), len(rows))
    scores = model.predict(_design(log, rep, cand, item_features), num_threads=1).reshape(len(rows), n_items)
    return scores.argmax(axis=1)


ITEM_CATEGORY_FEATURES = ("item_feature_1", "item_feature_2", "item_feature_3")
HISTORY_TS = 1_574_553_600.0  # 2019-11-24 00:00 UTC, the log's first day: the replayed histories' clock
ADSITE_POLICY_KEY = "adsite: ads_select's click model, Thompson (off-policy on the random log)"


def item_campaigns(path: Path) -> list[CampaignView]:
    """Each item of ``item_context.csv.gz`` as a CPC campaign with one creative (campaign and creative
    id = item id + 1, one advertiser each, equal bids), its hashed item features as interest categories."""
    rows = sorted(_read_csv(path), key=lambda r: int(r["item_id"]))
    start = datetime.fromtimestamp(HISTORY_TS, tz=UTC)
    campaigns = []
    for row in rows:
        ident = int(row["item_id"]) + 1
        interests = tuple((f"f{k + 1}-{row[f][:12].lower()}", 1.0) for k, f in enumerate(ITEM_CATEGORY_FEATURES))
        creative = CreativeView(id=ident, campaign_id=ident, kind="image", size="fluid", image_url="", headline="",
                                body="", cta="", landing_url="", html="")
        campaigns.append(CampaignView(
            id=ident, name=f"item {ident - 1}", advertiser_id=ident, advertiser=f"item {ident - 1}", tier="standard",
            pricing="cpc", bid_micros=1_000_000, daily_budget_micros=0, total_budget_micros=0, starts_at=start,
            ends_at=None, interests=interests, interest_min_score=0.0, devices=frozenset(), hours=frozenset(),
            cap_per_hour=0, cap_per_day=0, creatives=(creative,),
        ))
    return campaigns


def visitor_lifts(logs: Sequence[BanditLog], campaigns: Sequence[CampaignView], knobs: Knobs) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per log: (each round's visitor index, the interest lift of every campaign per visitor; row 0 is a
    visitor without history). A visitor is a distinct (user features, affinity); its history, the
    affinity read as that many clicks per item, goes through the feature code and the serving prior
    (``prior_interests_replay``), and the lift is ``ads_select``'s: the visitor's weighted interest over
    the population's (``weighted_score``, ``interest_lift``)."""
    from inference.api import EventRecord, prior_interests_replay

    keys: dict[tuple[Any, ...], int] = {}
    events: list[EventRecord] = []
    per_log = []
    for log in logs:
        visitor = np.zeros(len(log.click), dtype=np.int64)
        for i in np.flatnonzero(log.affinity.sum(axis=1) > 0):
            key = (*log.user[i].tolist(), *log.affinity[i].tolist())
            if key not in keys:
                keys[key] = len(keys) + 1
                user_id = f"obd-{keys[key]}"
                for item in np.flatnonzero(log.affinity[i] > 0):
                    categories = tuple(slug for slug, _ in campaigns[int(item)].interests)
                    for _ in range(max(1, round(float(log.affinity[i, item])))):
                        events.append(EventRecord(user_id=user_id, ts=HISTORY_TS + len(events), type="click",
                                                  categories=categories, item_id=str(item)))
            visitor[i] = keys[key]
        per_log.append(visitor)
    top = max(int(ads_setting("INTEREST_TOP")), 3 * len(campaigns))  # every item category, as the decision asks
    answers, population = prior_interests_replay(events, top=top)
    base_shares = population.shares()
    bases = [weighted_score(c, base_shares) for c in campaigns]
    lifts = np.ones((len(keys) + 1, len(campaigns)))
    for user_id, answer in answers.items():
        shares = answer.shares()
        row = int(user_id.split("-")[1])
        lifts[row] = [interest_lift(weighted_score(c, shares), bases[j], knobs) for j, c in enumerate(campaigns)]
    return [(visitor, lifts) for visitor in per_log]


def adsite_policy_probabilities(
    *,
    campaigns: Sequence[CampaignView],
    snapshot: Snapshot,
    lifts: np.ndarray,
    visitors: Sequence[int],
    slots: int,
    knobs: Knobs,
    draws: int,
    seed: int,
) -> dict[int, np.ndarray]:
    """For each visitor (a row of ``lifts``): [item, slot] probability that the ad server's policy shows
    the item in the slot, over ``draws`` decisions: each candidate's click probability and value from
    ``ADSITE_POLICY`` (a Thompson sample of ``quality_posteriors`` x the lift), ranked as ``ads_select``
    ranks them, the best in the first slot (one creative per advertiser, so no item twice). The log names
    no visitor across rounds, so every impression is scored as a visitor's first of its campaign (no
    wear-out, ``Candidate.wear`` 1)."""
    qualities = quality_posteriors(campaigns, snapshot, knobs)
    out: dict[int, np.ndarray] = {}
    for v in visitors:
        rng = random.Random(f"{seed}:{v}")
        candidates = [
            Candidate(user_id=f"obd-{v}", campaign=c, creative=c.creatives[0], lift=float(lifts[v, j]),
                      clicks=snapshot.clicks.get(c.creatives[0].id, 0), impressions=snapshot.impressions.get(c.creatives[0].id, 0))
            for j, c in enumerate(campaigns)
        ]
        counts = np.zeros((len(campaigns), slots))
        for _ in range(draws):
            ranked = []
            for j, cand in enumerate(candidates):
                p = ADSITE_POLICY.click_probability(cand, quality=qualities.get(cand.creative.id), rng=rng, knobs=knobs)
                ranked.append((TIER_RANK[cand.campaign.tier], -ADSITE_POLICY.value(cand, p), cand.creative.id, j))
            ranked.sort()
            for slot in range(slots):
                counts[ranked[slot][3], slot] += 1
        out[v] = counts / draws
    return out


def training_snapshot(log: BanditLog, rows: np.ndarray, lifts: np.ndarray, visitor: np.ndarray) -> Snapshot:
    """The creatives' counters after the logged rounds ``rows``: impressions, clicks and the extra exposure
    (summed lift - 1, in millionths, as the ledger keeps it with each served impression)."""
    impressions: dict[int, int] = {}
    clicks: dict[int, int] = {}
    extra: dict[int, int] = {}
    for i in rows:
        creative = int(log.item[i]) + 1
        impressions[creative] = impressions.get(creative, 0) + 1
        clicks[creative] = clicks.get(creative, 0) + int(log.click[i])
        extra[creative] = extra.get(creative, 0) + round((float(lifts[visitor[i], log.item[i]]) - 1.0) * EXPOSURE_UNIT)
    return Snapshot({}, {}, {}, {}, impressions, clicks, extra)


def _interval(samples: np.ndarray) -> list[float]:
    lo, hi = np.quantile(samples, [0.025, 0.975])
    return [round(float(lo), 6), round(float(hi), 6)]


def _ipw_samples(weights: np.ndarray, clicks: np.ndarray, *, seed: int, n_boot: int) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap samples (over rounds) of the IPW and SNIPW values."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(clicks), size=(n_boot, len(clicks)))
    w, c = weights[idx], clicks[idx]
    return (w * c).mean(axis=1), (w * c).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12)


def ipw_estimates(
    *,
    clicks: np.ndarray,
    propensity: np.ndarray,
    matches: np.ndarray,
    seed: int = 0,
    n_boot: int = 2000,
    policy_probability: np.ndarray | None = None,
) -> dict[str, Any]:
    """IPW and SNIPW value of a policy from a logged bandit feedback.

    ``matches[i]`` says whether a deterministic policy picks the logged action in round ``i``; for a
    stochastic one, ``policy_probability[i]`` is its probability of the logged action (and ``matches``
    whether that is above zero). Intervals are 95% bootstrap over rounds.
    """
    chosen = policy_probability if policy_probability is not None else matches.astype(float)
    weights = chosen / propensity
    ipw_boot, snipw_boot = _ipw_samples(weights, clicks, seed=seed, n_boot=n_boot)
    return {
        "ipw": round(float((weights * clicks).mean()), 6),
        "ipw_ci": _interval(ipw_boot),
        "snipw": round(float((weights * clicks).sum() / max(weights.sum(), 1e-12)), 6),
        "snipw_ci": _interval(snipw_boot),
        "matched_rounds": int(matches.sum()),
        "rounds": len(clicks),
    }


def on_policy(clicks: np.ndarray, *, seed: int = 0, n_boot: int = 2000) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    boot = clicks[rng.integers(0, len(clicks), size=(n_boot, len(clicks)))].mean(axis=1)
    return {"ctr": round(float(clicks.mean()), 6), "ctr_ci": _interval(boot), "rounds": len(clicks)}


def offpolicy_report(*, data_dir: Path, campaign: str = "all", seed: int = 0, folds: int = 2, draws: int = 500) -> dict[str, Any]:
    """The JSON report: the click model's greedy policy and the ad server's own policy (IPW, SNIPW) beside
    the logged policies, and the ad server's policy against the logged Bernoulli-TS one."""
    item_features = _item_matrix(data_dir / "random" / campaign / "item_context.csv.gz")
    n_items = len(item_features)
    codes: dict[str, dict[str, int]] = {}
    random_log = bandit_log_read(data_dir / "random" / campaign / f"{campaign}.csv.gz", codes=codes, n_items=n_items)
    bts_log = bandit_log_read(data_dir / "bts" / campaign / f"{campaign}.csv.gz", codes=codes, n_items=n_items)
    n = len(random_log.click)
    fold_of = np.arange(n) * folds // n  # contiguous blocks in time order
    matches = np.zeros(n, dtype=bool)
    for k in range(folds):
        train, test = np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)
        model = _fit(_design(random_log, train, random_log.item[train], item_features), random_log.click[train], seed)
        matches[test] = greedy_actions(model, random_log, test, item_features) == random_log.item[test]
    model_policy = ipw_estimates(clicks=random_log.click, propensity=random_log.propensity, matches=matches, seed=seed)
    adsite = adsite_policy_report(data_dir=data_dir, campaign=campaign, random_log=random_log, bts_log=bts_log,
                                  fold_of=fold_of, seed=seed, draws=draws)
    return {
        "dataset": f"open-bandit-dataset-small/{campaign}",
        "items": n_items,
        "folds": folds,
        "seed": seed,
        "click_model": "LightGBM binary (100 trees, 4 leaves, min 100 per leaf): user features x position x item "
                       "features x the visitor's affinity to the item; trained on the random log, cross-fitted",
        "policies": {
            "random (logged)": on_policy(random_log.click, seed=seed),
            "bts (logged)": on_policy(bts_log.click, seed=seed),
            "click model, greedy (off-policy on the random log)": model_policy,
            ADSITE_POLICY_KEY: adsite["estimate"],
        },
        "adsite_policy": adsite["about"],
        "adsite_vs_bts": adsite["versus_bts"],
    }


def adsite_policy_report(
    *, data_dir: Path, campaign: str, random_log: BanditLog, bts_log: BanditLog, fold_of: np.ndarray, seed: int, draws: int,
) -> dict[str, Any]:
    """The ad server's policy on the random log (cross-fitted like the click model: the creatives'
    statistics come from the other folds), and its difference from the logged Bernoulli-TS policy."""
    campaigns = item_campaigns(data_dir / "random" / campaign / "item_context.csv.gz")
    knobs = Knobs.read()
    (visitor, lifts), _ = visitor_lifts([random_log, bts_log], campaigns, knobs)
    slots = int(random_log.position.max())
    chosen = np.zeros(len(random_log.click))
    for k in np.unique(fold_of):
        train, test = np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)
        snapshot = training_snapshot(random_log, train, lifts, visitor)
        probabilities = adsite_policy_probabilities(
            campaigns=campaigns, snapshot=snapshot, lifts=lifts, visitors=sorted(set(visitor[test].tolist())),
            slots=slots, knobs=knobs, draws=draws, seed=seed * 1000 + int(k),
        )
        for i in test:
            chosen[i] = probabilities[int(visitor[i])][int(random_log.item[i]), int(random_log.position[i]) - 1]
    estimate = ipw_estimates(clicks=random_log.click, propensity=random_log.propensity, matches=chosen > 0,
                             seed=seed, policy_probability=chosen)
    weights = chosen / random_log.propensity
    ipw_boot, snipw_boot = _ipw_samples(weights, random_log.click, seed=seed, n_boot=2000)
    bts_rng = np.random.default_rng([seed, 1])
    bts_boot = bts_log.click[bts_rng.integers(0, len(bts_log.click), size=(2000, len(bts_log.click)))].mean(axis=1)
    bts = float(bts_log.click.mean())
    versus: dict[str, Any] = {}
    for name, point, boot in (("ipw", estimate["ipw"], ipw_boot), ("snipw", estimate["snipw"], snipw_boot)):
        difference = _interval(boot - bts_boot)
        versus[f"{name}_minus_bts"] = round(point - bts, 6)
        versus[f"{name}_minus_bts_ci"] = difference
        versus[f"{name}_wins"] = difference[0] > 0
    said = []
    for name in ("ipw", "snipw"):
        lo, hi = versus[f"{name}_minus_bts_ci"]
        said.append(f"{name.upper()} {'wins' if lo > 0 else 'loses' if hi < 0 else 'ties (interval includes zero)'}")
    versus["verdict"] = "; ".join(said)
    about = {
        "scoring": "adsite.ads.scoring.ADSITE_POLICY (Thompson sample of quality_posteriors x interest_lift), the site's Knobs, "
                   "ranked by tier, expected value, creative id as ads_select ranks; the best item in slot 1",
        "items_as": "one CPC campaign per item (equal bids), one creative; interests = its 3 hashed item features",
        "visitors": int(lifts.shape[0] - 1),
        "visitors_note": "a visitor with history is a distinct (user features, user-item affinity); the affinity is "
                         "replayed as clicks through the feature code and the serving prior (inference.api.prior_interests_replay)",
        "rounds_with_history": int((visitor > 0).sum()),
        "draws_per_visitor": draws,
        "statistics": "creative impressions, clicks and exposure from the other fold of the random log (cross-fitted)",
    }
    return {"estimate": estimate, "about": about, "versus_bts": versus}


def generated_log(*, n: int, n_items: int, ctr: Sequence[float], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(actions, clicks, propensity) of a uniform logging policy over items with known click rates."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, n_items, size=n)
    clicks = (rng.random(n) < np.asarray(ctr)[actions]).astype(float)
    return actions, clicks, np.full(n, 1.0 / n_items)

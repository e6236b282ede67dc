"""The splits and the baselines on generated streams where the right answer is known."""

from __future__ import annotations

import numpy as np

from inference.evaluation.protocol import split_by_time, split_by_user
from inference.evaluation.runner import interests_evaluate
from inference.events import EventRecord

CATEGORIES = ("news", "sport", "travel", "food", "tech")


def loyal_stream(users: int = 40, events: int = 40) -> list[EventRecord]:
    """Each user only ever views one category; the crowd's favourite is 'news'."""
    records = []
    for u in range(users):
        category = CATEGORIES[u % len(CATEGORIES)] if u % 2 else "news"
        for i in range(events):
            records.append(
                EventRecord(
                    user_id=f"u{u}",
                    ts=1_000_000.0 + i * 3600 + u,
                    type="page_view",
                    categories=(category,),
                    item_id=f"{category}-{i}",
                )
            )
    return sorted(records, key=lambda r: r.ts)


def test_user_split_cuts_each_long_user_after_80_percent_of_their_events():
    events = loyal_stream(users=3, events=40) + [
        EventRecord(user_id="short", ts=1_000_000.0 + i, type="page_view", categories=("food",))
        for i in range(29)
    ]
    split = split_by_user(events, horizon=10)
    assert sorted(case.user_id for case in split.cases) == ["u0", "u1", "u2"]
    assert all(len(case.history) == 32 for case in split.cases)
    assert all(sum(case.truth.values()) == 8 for case in split.cases)  # 8 events left, one category each
    assert sum(1 for e in split.train if e.user_id == "short") == 29
    assert len(split.train) == 3 * 32 + 29


def test_time_split_needs_five_events_before_and_one_after_the_cutoff():
    events = [
        EventRecord(user_id="a", ts=float(t), type="page_view", categories=("news",)) for t in range(10)
    ]
    events += [
        EventRecord(user_id="b", ts=float(t), type="page_view", categories=("tech",)) for t in (0, 1, 2, 3, 9)
    ]
    events += [
        EventRecord(user_id="c", ts=float(t), type="page_view", categories=("food",)) for t in range(6)
    ]
    split = split_by_time(sorted(events, key=lambda e: e.ts), quantile=0.8, horizon=10)
    assert split.cutoff is not None
    assert [case.user_id for case in split.cases] == ["a"]
    assert all(e.ts < split.cutoff for e in split.train)
    assert split.cases[0].truth == {"news": sum(1 for t in range(10) if t >= split.cutoff)}


def test_frequency_baseline_is_perfect_for_users_loyal_to_one_category():
    report = interests_evaluate(loyal_stream(), dataset="loyal", split="user")
    assert report["test_users"] == 40
    assert report["results"]["frequency"]["ndcg@5"] == 1.0
    assert report["results"]["frequency"]["recall@3"] == 1.0
    assert report["results"]["popularity"]["ndcg@5"] < 1.0
    assert report["results"]["popularity"]["auc"] == 0.5
    assert set(report["results"]) == {"popularity", "frequency", "recent", "decayed"}


def test_model_scorers_are_reported_with_the_paired_difference_against_the_best_baseline():
    def oracle(split, categories, seed):
        index = {c: i for i, c in enumerate(categories)}
        scores = np.zeros((len(split.cases), len(categories)))
        for row, case in enumerate(split.cases):
            for category, count in case.truth.items():
                scores[row, index[category]] = count
        return scores, {"train_seconds": 0.0}

    report = interests_evaluate(loyal_stream(), dataset="loyal", split="user", scorers={"neural": oracle})
    assert report["results"]["neural"]["ndcg@5"] == 1.0
    assert report["results"]["neural"]["train_seconds"] == 0.0
    assert report["best_vs_baseline"]["model"] == "neural"

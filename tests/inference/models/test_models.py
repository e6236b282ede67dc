"""The interest models: fit, score, save/load round trip, determinism, and learning a real signal."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from inference.evaluation.models import model_scorers
from inference.evaluation.runner import interests_evaluate
from inference.events import EventRecord
from inference.features import population_features, states_replay, user_features
from inference.models import PriorModel, model_load, model_train
from inference.models.base import MANIFEST, InterestModel

CATEGORIES = ("news", "sport", "travel", "food", "tech", "music")


def favourite_stream(users: int = 60, events: int = 40, seed: int = 0) -> list[EventRecord]:
    """Each user views their favourite category 75% of the time; half the users favour 'news', so
    popularity ranks 'news' first for everybody while the signal is in each user's own history."""
    rng = random.Random(seed)
    records = []
    for u in range(users):
        favourite = "news" if u % 2 == 0 else CATEGORIES[1 + u % (len(CATEGORIES) - 1)]
        start = 1_600_000_000.0 + rng.uniform(0, 86_400)
        for i in range(events):
            category = favourite if rng.random() < 0.75 else rng.choice(CATEGORIES)
            records.append(
                EventRecord(
                    user_id=f"u{u}",
                    ts=start + i * 1_800 + rng.uniform(0, 60),
                    type="page_view",
                    categories=(category,),
                    item_id=f"{category}-{rng.randrange(30)}",
                )
            )
    return sorted(records, key=lambda r: r.ts)


SMALL = {
    "neural": {"dim": 8, "hidden": 16, "max_epochs": 4, "patience": 2, "item_buckets": 64, "batch_size": 64},
    "gbdt": {"max_rounds": 30, "num_leaves": 7, "min_data_in_leaf": 5, "objective": "lambdarank"},
    "prior": {},
}


def read_out(stream, user_id):
    """What the online store would hand the model for ``user_id`` just after ``stream``."""
    states, population = states_replay(stream)
    now = stream[-1].ts + 1
    return user_features(states[user_id], now), population_features(population, now)


@pytest.fixture(scope="module")
def stream():
    return favourite_stream()


def _train(algorithm, stream, seed=0):
    return model_train(
        algorithm=algorithm,
        events=stream,
        categories=CATEGORIES,
        horizon=5,
        seed=seed,
        device="cpu",
        hyperparameters=SMALL[algorithm],
    )


@pytest.mark.parametrize("algorithm", ["neural", "gbdt", "prior"])
def test_saved_model_loads_back_and_scores_identically(algorithm, stream, tmp_path):
    model = _train(algorithm, stream)
    assert isinstance(model, InterestModel)
    user, population = read_out(stream, "u1")
    now = user.now
    before = model.predict(user, population, now=now, top=3)
    model.save(tmp_path / "v1")
    loaded = model_load(tmp_path / "v1")
    assert loaded.algorithm == algorithm
    after = loaded.predict(user, population, now=now, top=3)
    assert [c for c, _ in after] == [c for c, _ in before]
    assert [s for _, s in after] == pytest.approx([s for _, s in before], abs=1e-6)
    assert all(0.0 < s < 1.0 and math.isfinite(s) for _, s in after)
    assert [s for _, s in after] == sorted((s for _, s in after), reverse=True)
    manifest = json.loads((tmp_path / "v1" / MANIFEST).read_text())
    assert manifest["categories"] == list(CATEGORIES)
    assert "feature_schema_version" in manifest


@pytest.mark.parametrize("algorithm", ["neural", "gbdt"])
def test_training_is_deterministic_for_a_fixed_seed(algorithm, stream):
    user, population = read_out(stream, "u3")
    first = _train(algorithm, stream, seed=3).predict(user, population, now=user.now, top=6)
    second = _train(algorithm, stream, seed=3).predict(user, population, now=user.now, top=6)
    assert first == second


@pytest.mark.parametrize("algorithm", ["neural", "gbdt"])
def test_a_corrupt_artifact_refuses_to_load(algorithm, stream, tmp_path):
    model = _train(algorithm, stream)
    model.save(tmp_path / "m")
    artifact = next(p for p in (tmp_path / "m").iterdir() if p.name != MANIFEST)
    artifact.write_bytes(b"not a model")
    with pytest.raises(Exception):  # noqa: B017 - any error, never a half-loaded model
        model_load(tmp_path / "m")


def test_prior_serves_population_interests_to_cold_users_and_own_interests_to_known_ones():
    prior = PriorModel.from_population({"news": 50.0, "sport": 10.0, "food": 5.0, "travel": 1.0})
    assert [c for c, _ in prior.predict(None, None, now=0.0, top=2)] == ["news", "sport"]
    fan, population = read_out(
        favourite_stream(users=2, events=40), "u1"
    )  # favours 'travel', the least popular
    assert max(fan.counts, key=fan.counts.get) == "travel"
    assert prior.predict(fan, population, now=fan.now, top=1)[0][0] == "travel"


def test_learned_models_beat_popularity_on_a_stream_with_a_signal():
    report = interests_evaluate(
        favourite_stream(users=80, events=40, seed=1),
        dataset="favourites",
        split="user",
        horizon=5,
        scorers=model_scorers(["neural", "gbdt"], horizon=5, device="cpu", hyperparameters=SMALL),
    )
    popularity = report["results"]["popularity"]["ndcg@5"]
    for name in ("neural", "gbdt"):
        assert report["results"][name]["ndcg@5"] > popularity + 0.1
    assert np.isfinite(report["results"]["neural"]["auc"])


def test_a_feature_never_seen_in_training_does_not_decide_the_ranking(stream):
    """The training stream has no ad events (those columns are constant); a live visitor who then sees
    ads must still be ranked by their reading history, not by the ad columns blown up by scaling."""
    model = _train("neural", stream)
    live = [*stream]
    last = live[-1].ts
    for i in range(3):
        live.append(EventRecord("u1", last + 10 + i, "ad_impression", ("music",), "ad-1",
                                campaign_id="c1", creative_id="k1"))
    live.append(EventRecord("u1", last + 20, "ad_click", ("music",), "ad-1", campaign_id="c1", creative_id="k1"))
    plain_user, population = read_out(stream, "u1")
    ad_user, ad_population = read_out(live, "u1")
    plain = model.predict(plain_user, population, now=ad_user.now, top=3)
    with_ads = model.predict(ad_user, ad_population, now=ad_user.now, top=3)
    assert all(math.isfinite(s) and 0.0 < s < 1.0 for _, s in with_ads)
    assert plain[0][0] == with_ads[0][0] == "travel"  # u1 reads travel 75% of the time


@pytest.mark.parametrize("algorithm", ["gbdt", "prior"])
def test_pair_only_models_serve_the_same_answer_without_building_the_sequence(algorithm, stream):
    # gbdt and the prior score the pair rows only, so serving skips the recent-sequence arrays; the
    # answer must be exactly what the scores of the full inputs (as in training) give
    model = _train(algorithm, stream)
    assert model.uses_sequence is False
    for user_id in ("u1", "u7", "u22"):
        user, population = read_out(stream, user_id)
        served = model.inputs("", user, population, user.now)
        assert not served.items.any()  # the sequence was not built
        full = model.inputs("", user, population, user.now).__class__(
            **{**served.__dict__, **dict(zip(("items", "cats", "ages", "kinds"), _full_sequence(model, user), strict=True))}
        )
        assert full.items.any()
        np.testing.assert_array_equal(model.score(served), model.score(full))
        # best score first; equal scores by the population's popularity, then by name (the protocol's)
        names = [model.categories[int(i)] for i in full.candidates]
        ranked = sorted(
            zip(names, model.score(full), strict=True),
            key=lambda pair: (-pair[1], -population.counts.get(pair[0], 0.0), pair[0]),
        )[:4]
        answer = model.predict(user, population, now=user.now, top=4)
        assert [c for c, _ in answer] == [name for name, _ in ranked]
        assert [s for _, s in answer] == pytest.approx([1 / (1 + math.exp(-float(s))) for _, s in ranked])


def _full_sequence(model, user):
    from inference.models.inputs import sequence_arrays

    return sequence_arrays(user, model.category_index, model.item_buckets)


def test_the_network_is_served_as_the_mean_of_its_members_each_trained_from_its_own_seed(stream, tmp_path):
    """``members`` networks from seeds seed, seed + 1: the served scores are the mean of their log-softmax
    over the candidates, the first member is the network a single-network model trains from the same seed,
    and the ensemble saves, loads and exports to ONNX as one model."""
    import torch

    from inference.models.neural import InterestEnsemble, _inputs, _pack
    from inference.serving.fastpath import neural_onnx_scorer

    def train(members):
        return model_train(
            algorithm="neural", events=stream, categories=CATEGORIES, horizon=5, seed=4, device="cpu",
            hyperparameters={**SMALL["neural"], "members": members},
        )

    single, pair = train(1), train(2)
    assert isinstance(pair.network, InterestEnsemble) and len(pair.network.members) == 2
    assert [m["seed"] for m in pair.training["members"]] == [4, 5]
    user, population = read_out(stream, "u7")
    sample = pair.inputs("u7", user, population, user.now)
    packed = _inputs(_pack([sample], pair.mean, pair.std), torch.device("cpu"))
    with torch.inference_mode():
        first, second = (torch.log_softmax(m(*packed), dim=-1)[0].numpy() for m in pair.network.members)
        alone = single.network(*packed)[0].numpy()
    # the first member is the single network of the same seed; the two members differ
    assert np.allclose(torch.log_softmax(torch.from_numpy(alone), -1).numpy(), first, atol=1e-5)
    assert not np.allclose(first, second, atol=1e-3)
    assert pair.score(sample) == pytest.approx((first + second) / 2, abs=1e-5)
    # saved and loaded, and through ONNX Runtime (the serving path), the same ranking and scores
    pair.save(tmp_path / "pair")
    loaded = model_load(tmp_path / "pair")
    _same_answer(loaded.predict(user, population, now=user.now, top=6), pair.predict(user, population, now=user.now, top=6))
    assert neural_onnx_scorer(loaded)(sample) == pytest.approx(pair.score(sample), abs=1e-4)


def test_a_single_network_saved_before_members_existed_still_loads(stream, tmp_path):
    model = model_train(
        algorithm="neural", events=stream, categories=CATEGORIES, horizon=5, seed=0, device="cpu",
        hyperparameters={**SMALL["neural"], "members": 1},
    )
    model.save(tmp_path / "old")
    manifest = json.loads((tmp_path / "old" / MANIFEST).read_text())
    del manifest["hyperparameters"]["members"]  # as a version saved by the code before it
    (tmp_path / "old" / MANIFEST).write_text(json.dumps(manifest))
    user, population = read_out(stream, "u2")
    _same_answer(model_load(tmp_path / "old").predict(user, population, now=user.now, top=3),
                 model.predict(user, population, now=user.now, top=3))


def _same_answer(got, expected):
    assert [c for c, _ in got] == [c for c, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-6)

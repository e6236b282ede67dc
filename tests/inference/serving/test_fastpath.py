"""Serving fast paths: the compiled/exported models answer exactly as the plain ones, and fall back safely."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from inference.events import EventRecord
from inference.features import population_features, states_replay, user_features
from inference.serving import fastpath
from inference.serving.fastpath import accelerate
from tests.inference.streams import affinity_stream

pytestmark = pytest.mark.slow

CATEGORIES = [f"c{i}" for i in range(8)]


def stream() -> list[EventRecord]:
    return affinity_stream(CATEGORIES, seed=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    from inference.models import model_train

    root = tmp_path_factory.mktemp("fastpath")
    small = {
        "gbdt": {"objective": "binary", "max_rounds": 20},
        "neural": {"max_epochs": 2},
        "neural-sasrec": {"max_epochs": 2, "self_attention_layers": 1},
    }
    out = {}
    for name, params in small.items():
        algorithm = name.split("-")[0]
        model = model_train(
            algorithm=algorithm, events=stream(), categories=CATEGORIES, hyperparameters=params, device="cpu"
        )
        model.save(root / name)
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def readouts() -> list[tuple[object, object, float]]:
    events = stream()
    users, population = states_replay(events)
    now = events[-1].ts + 600
    pop = population_features(population, now)
    return [(user_features(users[u], now), pop, now) for u in sorted(users)]


def _load(directory: Path):
    from inference.models import model_load

    return model_load(directory)


def _same_answers(plain, fast, readouts) -> None:
    for user, population, now in readouts:
        expected = plain.predict(user, population, now=now, top=5)
        got = fast.predict(user, population, now=now, top=5)
        assert [c for c, _ in got] == [c for c, _ in expected]
        assert np.allclose([s for _, s in got], [s for _, s in expected], atol=1e-5)


def test_gbdt_compiled_with_lleaves_answers_as_the_booster(trained, readouts, tmp_path):
    fast = accelerate(_load(trained["gbdt"]), cache_dir=tmp_path)
    assert fast.serving_path == "lleaves"
    _same_answers(_load(trained["gbdt"]), fast, readouts)


def test_gbdt_compiled_booster_is_cached_for_the_next_load(trained, tmp_path):
    accelerate(_load(trained["gbdt"]), cache_dir=tmp_path)
    cached = sorted(p.name for p in tmp_path.iterdir())
    assert len(cached) == 1 and cached[0].endswith(".so")  # no temporary files left behind
    again = accelerate(_load(trained["gbdt"]), cache_dir=tmp_path)
    assert again.serving_path == "lleaves"
    assert sorted(p.name for p in tmp_path.iterdir()) == cached


def test_gbdt_falls_back_to_the_booster_when_compilation_fails(trained, readouts, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ImportError("lleaves not installed")

    monkeypatch.setattr(fastpath, "gbdt_compiled_scorer", broken)
    fast = accelerate(_load(trained["gbdt"]), cache_dir=tmp_path)
    assert fast.serving_path == "booster"
    _same_answers(_load(trained["gbdt"]), fast, readouts)


def test_a_fast_path_that_disagrees_with_the_model_is_not_used(trained, readouts, tmp_path, monkeypatch):
    monkeypatch.setattr(
        fastpath, "gbdt_compiled_scorer", lambda model, cache_dir: lambda s: np.zeros(s.candidates.size)
    )
    fast = accelerate(_load(trained["gbdt"]), cache_dir=tmp_path)
    assert fast.serving_path == "booster"
    _same_answers(_load(trained["gbdt"]), fast, readouts)


def test_gbdt_in_background_serves_through_the_booster_until_compiled(trained, readouts, tmp_path, monkeypatch):
    # an activated model must not wait for LLVM: it answers at once, and switches when compiled
    release = threading.Event()
    real = fastpath.gbdt_compiled_scorer

    def held(model, cache_dir):
        release.wait(60)
        return real(model, cache_dir=cache_dir)

    monkeypatch.setattr(fastpath, "gbdt_compiled_scorer", held)
    served = accelerate(_load(trained["gbdt"]), cache_dir=tmp_path, background=True)
    assert served.serving_path == "booster"
    _same_answers(_load(trained["gbdt"]), served, readouts)
    release.set()
    served.compiling.join(120)
    assert served.serving_path == "lleaves"
    _same_answers(_load(trained["gbdt"]), served, readouts)
    # compiled for this host already: the next load takes the compiled path at once
    again = accelerate(_load(trained["gbdt"]), cache_dir=tmp_path, background=True)
    assert again.serving_path == "lleaves" and not hasattr(again, "compiling")


@pytest.mark.parametrize("variant", ["neural", "neural-sasrec"])
def test_neural_through_onnxruntime_answers_as_torch(variant, trained, readouts):
    # with the self-attention block too: the exported graph gives the network's answers
    fast = accelerate(_load(trained[variant]))
    assert fast.serving_path == "onnxruntime"
    _same_answers(_load(trained[variant]), fast, readouts)


def test_plain_paths_when_fast_paths_are_off(trained, readouts):
    gbdt = accelerate(_load(trained["gbdt"]), compiled=False)
    neural = accelerate(_load(trained["neural"]), compiled=False)
    assert (gbdt.serving_path, neural.serving_path) == ("booster", "torch")
    _same_answers(_load(trained["neural"]), neural, readouts)


def test_batched_neural_gives_each_concurrent_caller_its_own_answer(trained, readouts):
    # the CUDA path (resident network + micro-batcher) run on the CPU: same answers, shared batches
    fast = accelerate(
        _load(trained["neural"]),
        device="cpu",
        batched=True,
        batch={"max_batch": 16, "max_wait_ms": 20, "max_queue": 64, "timeout_ms": 10_000},
    )
    assert fast.serving_path == "torch-batched-cpu"
    plain = _load(trained["neural"])
    expected = [plain.predict(u, p, now=n, top=5) for u, p, n in readouts]
    got: dict[int, list] = {}
    barrier = threading.Barrier(len(readouts))

    def call(i: int) -> None:
        user, population, now = readouts[i]
        barrier.wait()
        got[i] = fast.predict(user, population, now=now, top=5)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(readouts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for i, answer in enumerate(expected):
        assert [c for c, _ in got[i]] == [c for c, _ in answer]
        assert np.allclose([s for _, s in got[i]], [s for _, s in answer], atol=1e-5)
    assert fast.batcher.largest_batch > 1
    fast.batcher.close()


def test_neural_slowed_past_the_deadline_is_skipped_for_gbdt(trained, readouts):
    from benchmarks.slowed import SlowedLoader
    from inference.serving.adapters import ModelLoaderAdapter, PriorAdapter, StoreAdapter
    from inference.serving.deadline import Deadline
    from inference.serving.predictor import Predictor, PredictorConfig

    user, population, _ = readouts[0]
    store = StoreAdapter(lambda user_id, now=None: (user, population))
    active = {
        name: type("Active", (), {"version": f"{name}-1", "artifact_dir": path, "validation_score": None})
        for name, path in trained.items()
    }
    predictor = Predictor(
        features=store,
        prior=PriorAdapter(store),
        loader=SlowedLoader(ModelLoaderAdapter(fastpath={}), {"neural": 300}),
        registry_reader=lambda: active,
        config=PredictorConfig(poll_seconds=0),
    ).start(background=False)
    answer = predictor.predict("u1", deadline=Deadline(250), top=3)
    assert (answer.served_by, answer.fallback_reason) == ("gbdt", "over_budget")
    assert [name for name, _ in answer.stage_ms] == ["features", "gbdt"]  # neural not even tried

"""The training pipeline: a run registers candidates, activates only what is not worse, and a failed
or worse run leaves the active version serving. Models are test doubles with the model interface."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import override_settings

from inference.events import EventRecord
from inference.registry import selectors, services
from inference.registry.models import ModelVersion, TrainingRun
from inference.registry.run_lock import LOCK_KEY
from inference.registry.training import TrainingParts, training_run_execute

pytestmark = pytest.mark.django_db

DAY = 86_400.0


class DoubleModel:
    """Trained 'quality' is what the double evaluator reports as its NDCG@5."""

    def __init__(self, quality: float, *, broken_save: bool = False) -> None:
        self.quality = quality
        self.hyperparameters = {"quality": quality}
        self.broken_save = broken_save

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True)
        (directory / "manifest.json").write_text(json.dumps({"quality": self.quality}))
        if self.broken_save:
            raise OSError("disk full")


def load(directory: Path) -> DoubleModel:
    return DoubleModel(json.loads((Path(directory) / "manifest.json").read_text())["quality"])


def events_source(*, since=None, until=None, chunk_size=50_000):
    events = [
        EventRecord(
            user_id=f"u{n % 7}", ts=1_700_000_000 + n * DAY / 10, type="page_view", categories=(f"c{n % 3}",)
        )
        for n in range(300)
    ]
    for start in range(0, len(events), 100):
        yield events[start : start + 100]


BASELINES = {"popularity": 0.5, "frequency": 0.45, "recent": 0.4, "decayed": 0.42}


def evaluate(contenders, *, events, split, quantile, horizon):
    results = {
        name: {"ndcg@5": model.quality, "recall@3": 0.5, "auc": 0.6} for name, model in contenders.items()
    }
    for name, value in BASELINES.items():
        results[name] = {"ndcg@5": value, "recall@3": 0.4, "auc": 0.5}
    return {**results, "test_users": 7}


class Trainer:
    def __init__(self, *qualities: float, fail: bool = False, broken_save: bool = False) -> None:
        self.qualities = list(qualities)
        self.fail = fail
        self.broken_save = broken_save
        self.seen: list[int] = []

    def __call__(self, *, algorithm, events, categories, progress=None, **_):
        self.seen.append(len(events))
        if progress:
            progress(0.5, "half way")
        if self.fail:
            raise RuntimeError("training diverged")
        return DoubleModel(self.qualities.pop(0), broken_save=self.broken_save)


@pytest.fixture(autouse=True)
def model_dir(tmp_path):
    cache.delete(LOCK_KEY)
    with override_settings(INFERENCE={"MODEL_DIR": str(tmp_path / "models"), "REFIT_ON_ALL": False, "BLEND": False}):
        yield tmp_path / "models"


def train(trainer: Trainer, **options) -> TrainingRun:
    parts = TrainingParts(
        event_source=events_source,
        category_source=lambda: ["c0", "c1", "c2"],
        trainer=trainer,
        evaluator=evaluate,
        loader=load,
    )
    return training_run_execute(algorithm=options.pop("algorithm", "gbdt"), parts=parts, **options)


def active_version() -> str | None:
    row = selectors.model_version_active(algorithm="gbdt")
    return row.version if row else None


def test_first_run_registers_and_activates_with_metrics_and_artifacts(model_dir):
    trainer = Trainer(0.7)
    run = train(trainer)
    assert run.status == "succeeded" and run.percent == 100
    version = ModelVersion.objects.get(algorithm="gbdt")
    assert (version.status, active_version()) == ("active", version.version)
    assert (model_dir / version.version / "manifest.json").exists()
    ranker = ModelVersion.objects.get(algorithm="popularity")  # the best baseline the double scored
    # no temporary directory left
    assert sorted(p.name for p in model_dir.iterdir()) == sorted([version.version, ranker.version])
    assert version.metrics["results"]["model"]["ndcg@5"] == 0.7
    assert version.metrics["results"]["popularity"]["ndcg@5"] == 0.5
    assert version.data_from < version.data_to
    assert trainer.seen == [240]  # the models never see the later evaluation slice (last 20%)
    assert run.outcome["gbdt"]["activated"] is True


def test_worse_candidate_leaves_the_active_version_serving():
    train(Trainer(0.8))
    serving = active_version()
    run = train(Trainer(0.6))
    assert run.status == "succeeded"
    assert active_version() == serving
    candidate = ModelVersion.objects.filter(algorithm="gbdt").exclude(version=serving).get()
    assert candidate.status == "candidate"
    assert candidate.metrics["results"]["active"]["ndcg@5"] == 0.8
    assert "active version kept" in candidate.metrics["decision"]


def test_candidate_not_worse_than_active_is_activated():
    train(Trainer(0.8))
    first = active_version()
    train(Trainer(0.8))
    assert active_version() != first


def test_activate_always_and_never():
    train(Trainer(0.8))
    serving = active_version()
    train(Trainer(0.1), activate="never")
    assert active_version() == serving
    train(Trainer(0.1), activate="always")
    assert ModelVersion.objects.get(version=active_version()).metrics["results"]["model"]["ndcg@5"] == 0.1


def test_failed_training_leaves_the_active_version_and_records_the_error(model_dir):
    train(Trainer(0.8))
    serving = active_version()
    run = train(Trainer(fail=True))
    assert run.status == "failed"
    assert "training diverged" in run.error and run.finished_at is not None
    assert active_version() == serving
    assert ModelVersion.objects.filter(algorithm="gbdt").count() == 1
    assert serving in [p.name for p in model_dir.iterdir()]
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".tmp")]


def test_failed_save_leaves_no_partial_artifact_directory(model_dir):
    run = train(Trainer(0.9, broken_save=True))
    assert run.status == "failed"
    assert ModelVersion.objects.count() == 0
    assert not model_dir.exists() or list(model_dir.iterdir()) == []


def test_a_second_concurrent_run_is_skipped_and_changes_nothing():
    cache.add(LOCK_KEY, "someone else", timeout=60)
    run = train(Trainer(0.9))
    assert run.status == "skipped"
    assert ModelVersion.objects.count() == 0


def _dead_runner() -> str:
    """``<host>-<pid>`` of a process of this host that has exited (as a SIGKILLed pool process has)."""
    import socket
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{socket.gethostname()}-{child.pid}"


def test_a_run_whose_process_was_killed_is_recorded_failed_and_does_not_skip_the_next():
    """A run killed mid-training (its process gone, its lock still held) must not read as running, nor
    make every run of the lock's lifetime a skip."""
    runner = _dead_runner()
    cache.add(LOCK_KEY, f"{runner}|tok", timeout=60)
    killed = TrainingRun.objects.create(status="running", stage="train", percent=37.5,
                                        options={"algorithm": "gbdt", "runner": runner, "lock": "tok"})
    run = train(Trainer(0.9))
    assert run.status == "succeeded"
    killed.refresh_from_db()
    assert killed.status == "failed" and killed.finished_at is not None
    assert runner in killed.error and "'train' at 38%" in killed.error and "no longer exists" in killed.error
    assert cache.get(LOCK_KEY) is None


def test_reading_the_runs_records_an_abandoned_one_as_failed():
    from inference.api import training_run, training_runs_recent

    runner = _dead_runner()
    cache.add(LOCK_KEY, f"{runner}|tok", timeout=60)
    TrainingRun.objects.create(status="running", stage="train", percent=20, options={"runner": runner, "lock": "tok"})
    latest = training_run()
    assert latest is not None and latest.status == "failed" and "abandoned" in latest.error
    assert [r.status for r in training_runs_recent()] == ["failed"]


def test_a_run_of_another_host_is_abandoned_only_once_its_lease_lapsed():
    from inference.api import training_run

    runner = "elsewhere.example-4242"
    cache.add(LOCK_KEY, f"{runner}|tok", timeout=60)
    TrainingRun.objects.create(status="running", stage="train", percent=20, options={"runner": runner, "lock": "tok"})
    latest = training_run()
    assert latest is not None and latest.status == "running"  # alive as far as anyone here can tell
    assert train(Trainer(0.9)).status == "skipped"
    cache.delete(LOCK_KEY)  # the lease lapsed: nobody renewed it
    latest = training_run(run_id=latest.id)
    assert latest is not None and latest.status == "failed" and "lease lapsed" in latest.error


def test_a_live_run_renews_its_lease(monkeypatch):
    """The lock lives ``LEASE_SECONDS`` and is renewed while the run goes on, so a long run keeps it."""
    from inference.registry import run_lock

    # Whole seconds: Django's Redis cache stores time-outs as whole seconds (0.4 would be 0).
    monkeypatch.setattr(run_lock, "LEASE_SECONDS", 1)
    held: list[object] = []

    class SlowTrainer(Trainer):
        def __call__(self, **kwargs):
            import time

            time.sleep(2.5)  # more than two lease lifetimes
            held.append(cache.get(LOCK_KEY))
            return super().__call__(**kwargs)

    run = train(SlowTrainer(0.9))
    assert run.status == "succeeded"
    assert held and str(held[0]).endswith(f"|{run.options['lock']}")


def test_unloadable_active_version_does_not_block_its_replacement(model_dir):
    services.model_version_register(algorithm="gbdt", version="gbdt-broken", artifact_path="gbdt-broken")
    services.model_version_activate(version="gbdt-broken")
    train(Trainer(0.6))
    assert active_version() != "gbdt-broken"


def test_all_trains_both_algorithms():
    run = train(Trainer(0.5, 0.6), algorithm="all")
    assert set(run.outcome) == {"neural", "gbdt", "baseline"}
    assert set(selectors.active_model_versions()) == {"neural", "gbdt", "popularity"}


def test_a_first_model_worse_than_the_best_baseline_is_registered_and_the_baseline_serves():
    run = train(Trainer(0.45))  # below popularity's 0.5 on the same slice
    candidate = ModelVersion.objects.get(algorithm="gbdt")
    assert candidate.status == "candidate" and active_version() is None
    assert "< best baseline popularity 0.5000: registered, not served" in candidate.metrics["decision"]
    assert run.outcome["gbdt"]["activated"] is False
    assert set(selectors.active_model_versions()) == {"popularity"}
    assert run.outcome["baseline"]["activated"] is True


def test_an_active_model_that_falls_below_the_best_baseline_is_withdrawn():
    train(Trainer(0.8))
    serving = active_version()
    BASELINES["decayed"] = 0.9
    try:
        train(Trainer(0.7))  # the active one scores 0.8 on this slice: below decayed's 0.9
    finally:
        BASELINES["decayed"] = 0.42
    assert active_version() is None
    assert ModelVersion.objects.get(version=serving).status == "retired"
    # the best baseline serves; the one that served before is withdrawn with it
    assert set(selectors.active_model_versions()) == {"decayed"}


def test_an_activated_model_is_trained_again_on_every_event_before_it_is_saved(model_dir):
    trainer = Trainer(0.8, 0.81)
    with override_settings(INFERENCE={"MODEL_DIR": str(model_dir), "REFIT_ON_ALL": True}):
        train(trainer)
    assert trainer.seen == [240, 300]  # judged on the slice after 240 events, then refit on all 300
    version = ModelVersion.objects.get(algorithm="gbdt")
    assert load(model_dir / version.version).quality == 0.81  # the refit copy is what serves
    assert version.metrics["results"]["model"]["ndcg@5"] == 0.8  # its figures: the judged copy's
    assert version.metrics["refit"]["events"] == 300
    assert version.data_to.timestamp() == 1_700_000_000 + 299 * DAY / 10


def test_a_model_that_is_not_activated_is_not_trained_again(model_dir):
    trainer = Trainer(0.3)
    with override_settings(INFERENCE={"MODEL_DIR": str(model_dir), "REFIT_ON_ALL": True}):
        train(trainer)
    assert trainer.seen == [240]


class Served:
    """What the predictor loads for a double: it answers with its version's quality as the top score."""

    def __init__(self, quality: float) -> None:
        self.quality = quality

    def predict(self, features, *, now, top):
        return [("c0", self.quality)][:top]


def test_the_ranker_best_on_the_slice_serves_first_whatever_its_algorithm():
    """Taobao's case: both learned models beat the best baseline, LightGBM by more than the network.
    The same run judged both on one slice, so LightGBM answers and the network stands behind it."""
    from inference.serving.deadline import Deadline
    from inference.serving.predictor import Predictor, PredictorConfig
    from inference.serving.wiring import registry_active_versions
    from tests.inference.serving.conftest import FakeFeatures, FakePrior

    train(Trainer(0.62, 0.65), algorithm="all")  # neural 0.62, gbdt 0.65; popularity 0.5
    scores = {a: v.validation_score for a, v in selectors.active_model_versions().items()}
    assert scores == {"neural": 0.62, "gbdt": 0.65, "popularity": 0.5}
    predictor = Predictor(
        features=FakeFeatures(users={"u1": {"c0": 1.0}}),
        prior=FakePrior(),
        loader=lambda name, directory: Served(load(directory).quality if name in ("neural", "gbdt") else 0.5),
        registry_reader=registry_active_versions,
        config=PredictorConfig(poll_seconds=0),
    ).start(background=False)
    answer = predictor.predict("u1", deadline=Deadline(1000))
    assert (answer.served_by, answer.fallback_reason) == ("gbdt", None)
    assert answer.model_version == selectors.model_version_active(algorithm="gbdt").version


def test_a_run_of_one_algorithm_judges_the_other_active_learned_version_on_its_slice():
    train(Trainer(0.62, 0.65), algorithm="all")
    neural = selectors.model_version_active(algorithm="neural")
    services.model_version_score(version=neural.version, score=0.99)  # as an older slice had it
    run = train(Trainer(0.64))  # gbdt only: the network is judged again on this run's slice
    assert ModelVersion.objects.get(version=neural.version).validation_score == 0.62
    assert run.outcome["neural"]["reason"] == "judged again on this run's slice: ndcg@5 0.6200"
    BASELINES["decayed"] = 0.63
    try:
        train(Trainer(0.7))  # now below the best baseline on the slice: withdrawn, like a trained one
    finally:
        BASELINES["decayed"] = 0.42
    assert ModelVersion.objects.get(version=neural.version).status == "retired"
    assert set(selectors.active_model_versions()) == {"gbdt", "decayed"}


def test_the_active_version_kept_serving_carries_the_figure_of_the_latest_slice():
    train(Trainer(0.8))
    serving = active_version()
    services.model_version_score(version=serving, score=0.95)
    train(Trainer(0.6))  # the candidate loses to the active one, which scored 0.8 on this slice
    assert active_version() == serving
    assert ModelVersion.objects.get(version=serving).validation_score == 0.8


def test_a_time_slice_with_too_few_visitors_gives_way_to_each_visitors_own_later_events():
    """MovieLens's case: every visitor comes once, in one burst, so a time cut leaves almost nobody with
    events on both sides (10 of 610 raters) and the serving order would be decided on them. The run
    judges on the user split then, and the models' own early-stopping split follows it."""

    def bursts(*, since=None, until=None, chunk_size=50_000):
        yield [
            EventRecord(
                user_id=f"v{u}", ts=1_700_000_000 + u * DAY + i * 60, type="page_view", categories=(f"c{i % 3}",)
            )
            for u in range(150)
            for i in range(40)
        ]

    seen: list[dict] = []

    def recording_evaluate(contenders, *, events, split, quantile, horizon):
        seen.append({"split": split})
        return evaluate(contenders, events=events, split=split, quantile=quantile, horizon=horizon)

    class RecordingTrainer(Trainer):
        def __call__(self, **kwargs):
            seen.append({"validation": kwargs.get("validation"), "events": len(kwargs["events"])})
            return super().__call__(**kwargs)

    parts = TrainingParts(
        event_source=bursts,
        category_source=lambda: ["c0", "c1", "c2"],
        trainer=RecordingTrainer(0.7),
        evaluator=recording_evaluate,
        loader=load,
    )
    run = training_run_execute(algorithm="gbdt", parts=parts)
    assert run.status == "succeeded"
    # trained on each visitor's first 80% (32 of 40 events), judged on the rest, early stopping alike
    assert seen[:2] == [{"validation": "user", "events": 150 * 32}, {"split": "user"}]
    version = ModelVersion.objects.get(algorithm="gbdt")
    assert version.metrics["slice"]["split"] == "user"
    baseline = ModelVersion.objects.get(algorithm="popularity")
    assert baseline.metrics["slice"]["split"] == "user"


def test_a_time_slice_with_enough_visitors_stays_the_judge(monkeypatch):
    from inference.registry import judging

    monkeypatch.setattr(judging, "SLICE_MIN_USERS", 5)  # the 7 visitors of events_source straddle the cut
    seen: list[str] = []

    def recording_evaluate(contenders, *, events, split, quantile, horizon):
        seen.append(split)
        return evaluate(contenders, events=events, split=split, quantile=quantile, horizon=horizon)

    parts = TrainingParts(
        event_source=events_source,
        category_source=lambda: ["c0", "c1", "c2"],
        trainer=Trainer(0.7),
        evaluator=recording_evaluate,
        loader=load,
    )
    training_run_execute(algorithm="gbdt", parts=parts)
    assert seen == ["time"]
    assert ModelVersion.objects.get(algorithm="gbdt").metrics["slice"]["split"] == "time"


def test_a_run_whose_row_cannot_be_written_leaves_the_lock_free(monkeypatch):
    """The database refuses the run's row (it went away after the lock was taken): the error reaches the
    caller, and the lock is neither held nor kept renewed, so the next run is not skipped."""
    import threading

    from django.db import OperationalError

    real_create = TrainingRun.objects.create

    def refuse_running(**kwargs):
        if kwargs.get("status") == "running":
            raise OperationalError("the database went away")
        return real_create(**kwargs)

    monkeypatch.setattr(TrainingRun.objects, "create", refuse_running)
    with pytest.raises(OperationalError):
        train(Trainer(0.9))
    assert cache.get(LOCK_KEY) is None
    assert not [t for t in threading.enumerate() if t.name == "adsite-training-lease"]
    monkeypatch.undo()
    assert train(Trainer(0.9)).status == "succeeded"

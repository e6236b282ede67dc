"""The fallback chain neural -> gbdt -> prior: who answers, and the reason given."""

from __future__ import annotations

import math
import threading
import time

from inference.serving.deadline import Deadline


def test_neural_answers_when_healthy_and_in_time(registry, make_predictor, clock):
    registry.publish("neural", "neural-1")
    registry.publish("gbdt", "gbdt-1")
    answer = make_predictor().predict("alice", deadline=Deadline(1000, clock=clock), top=2)
    assert answer.served_by == "neural"
    assert answer.model_version == "neural-1"
    assert answer.fallback_reason is None
    assert [c for c, _ in answer.scores] == ["sports", "travel"]
    assert answer.elapsed_ms >= 0


def test_exhausted_budget_falls_to_the_prior_over_budget(registry, make_predictor, clock):
    registry.publish("neural", "neural-1")
    registry.publish("gbdt", "gbdt-1")
    answer = make_predictor().predict("alice", deadline=Deadline(0, clock=clock), top=3)
    assert answer.served_by == "prior"
    assert answer.fallback_reason == "over_budget"
    assert answer.scores[0][0] == "sports"  # the user's own counts blended into the prior


def test_slow_neural_is_skipped_for_gbdt_when_its_p99_does_not_fit(registry, make_predictor, clock):
    neural = registry.publish("neural", "neural-1")
    neural.delay_s = 0.02  # 20 ms: the warm-up measures it
    registry.publish("gbdt", "gbdt-1")
    predictor = make_predictor()
    calls_after_warm_up = neural.calls
    answer = predictor.predict("alice", deadline=Deadline(10, clock=clock), top=3)
    assert answer.served_by == "gbdt"
    assert answer.fallback_reason == "over_budget"
    assert neural.calls == calls_after_warm_up  # not even tried


def test_exception_falls_through_to_gbdt(registry, make_predictor, clock):
    neural = registry.publish("neural", "neural-1")
    registry.publish("gbdt", "gbdt-1")
    predictor = make_predictor()
    neural.fail = True
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock))
    assert (answer.served_by, answer.fallback_reason, answer.model_version) == ("gbdt", "error", "gbdt-1")


def test_nan_output_falls_through(registry, make_predictor, clock):
    neural = registry.publish("neural", "neural-1")
    registry.publish("gbdt", "gbdt-1")
    predictor = make_predictor()
    neural.nan = True
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock))
    assert (answer.served_by, answer.fallback_reason) == ("gbdt", "error")
    assert all(math.isfinite(score) for _, score in answer.scores)


def test_out_of_range_output_falls_through(registry, make_predictor, clock):
    neural = registry.publish("neural", "neural-1")
    gbdt = registry.publish("gbdt", "gbdt-1")
    predictor = make_predictor()
    neural.out_of_range = True
    gbdt.fail = True
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock))
    assert (answer.served_by, answer.fallback_reason) == ("prior", "error")


def test_corrupt_artifact_at_start_up_falls_through(registry, make_predictor, clock):
    registry.publish("neural", "neural-1")
    registry.publish("gbdt", "gbdt-1")
    registry.corrupt.add("neural-1")
    predictor = make_predictor()
    assert predictor.loaded() == {"gbdt": "gbdt-1"}
    assert "corrupt artifact" in predictor.load_errors()["neural"]
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock))
    assert (answer.served_by, answer.fallback_reason) == ("gbdt", "error")


def test_corrupt_new_version_leaves_the_previous_one_serving(registry, make_predictor, clock):
    registry.publish("neural", "neural-1")
    predictor = make_predictor()
    registry.publish("neural", "neural-2")
    registry.corrupt.add("neural-2")
    predictor.refresh()
    predictor.refresh()  # a failed version is not reloaded on every poll
    assert registry.loads == 2
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock))
    assert (answer.served_by, answer.model_version, answer.fallback_reason) == ("neural", "neural-1", None)


def test_a_corrupt_new_version_is_reported_until_the_registry_names_a_loadable_one(registry, make_predictor):
    """Hot reload of a corrupt version: the previous one serves on, and the process says (``load_errors``,
    hence /readyz) that it is not serving what the registry asks for, until it is."""
    registry.publish("neural", "neural-1")
    predictor = make_predictor()
    assert predictor.load_errors() == {}
    registry.publish("neural", "neural-2")
    registry.corrupt.add("neural-2")
    predictor.refresh()
    assert predictor.loaded() == {"neural": "neural-1"}
    assert "neural-2 failed to load" in predictor.load_errors()["neural"]
    assert "serving neural-1" in predictor.load_errors()["neural"]
    registry.publish("neural", "neural-3")
    predictor.refresh()
    assert predictor.loaded() == {"neural": "neural-3"}
    assert predictor.load_errors() == {}


def test_no_active_model_gives_the_prior_with_no_model(make_predictor, clock):
    answer = make_predictor().predict("alice", deadline=Deadline(1000, clock=clock))
    assert (answer.served_by, answer.fallback_reason) == ("prior", "no_model")
    assert answer.scores


def test_unknown_user_gets_a_cold_start_answer(registry, make_predictor, clock):
    registry.publish("neural", "neural-1")
    answer = make_predictor().predict("nobody", deadline=Deadline(1000, clock=clock), top=2)
    assert (answer.served_by, answer.fallback_reason) == ("prior", "cold_start")
    assert [c for c, _ in answer.scores] == ["news", "sports"]


def test_feature_store_down_gives_population_prior_with_error(registry, features, make_predictor, clock):
    registry.publish("neural", "neural-1")
    predictor = make_predictor()
    features.down = True
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock), top=3)
    assert (answer.served_by, answer.fallback_reason) == ("prior", "error")
    assert [c for c, _ in answer.scores] == ["news", "sports", "travel"]  # population only


def test_answer_past_the_deadline_is_discarded_as_timeout(registry, make_predictor, clock):
    neural = registry.publish("neural", "neural-1")
    registry.publish("gbdt", "gbdt-1")
    predictor = make_predictor()
    neural.delay_s = 0.03  # warm-up saw a fast model; this call overruns a 10 ms deadline
    answer = predictor.predict("alice", deadline=Deadline(10, clock=clock))
    assert answer.served_by == "prior"  # gbdt cannot fit in the time left (none)
    assert answer.fallback_reason == "timeout"


def test_repeated_errors_open_the_breaker_and_the_model_is_not_called(registry, make_predictor, clock):
    neural = registry.publish("neural", "neural-1")
    registry.publish("gbdt", "gbdt-1")
    predictor = make_predictor(failure_threshold=3, cooldown_s=3600)
    neural.fail = True
    reasons = [predictor.predict("alice", deadline=Deadline(1000, clock=clock)).fallback_reason for _ in range(3)]
    assert reasons == ["error", "error", "error"]
    calls = neural.calls
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock))
    assert (answer.served_by, answer.fallback_reason) == ("gbdt", "circuit_open")
    assert neural.calls == calls
    assert predictor.breaker_states()["neural"] == "open"


def test_hot_reload_under_concurrent_requests_fails_no_request(registry, make_predictor, clock):
    registry.publish("neural", "neural-1")
    predictor = make_predictor()
    problems: list[object] = []
    versions: set[str] = set()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock))
                if answer.served_by != "neural" or answer.fallback_reason is not None:
                    problems.append(answer)
                versions.add(answer.model_version)
            except Exception as exc:  # pragma: no cover - the failure this test looks for
                problems.append(exc)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for n in range(2, 12):
        registry.publish("neural", f"neural-{n}")
        assert predictor.refresh()
        time.sleep(0.005)
    stop.set()
    for thread in threads:
        thread.join()
    assert problems == []
    assert predictor.loaded() == {"neural": "neural-11"}
    assert len(versions) > 1


def test_background_poll_picks_up_a_newly_activated_version(registry, make_predictor, clock):
    registry.publish("gbdt", "gbdt-1")
    predictor = make_predictor(poll_seconds=0.02)
    registry.publish("gbdt", "gbdt-2")
    waited = time.monotonic()
    while predictor.loaded().get("gbdt") != "gbdt-2" and time.monotonic() - waited < 10:
        time.sleep(0.01)
    assert predictor.predict("alice", deadline=Deadline(1000, clock=clock)).model_version == "gbdt-2"


def test_deactivated_algorithm_is_unloaded(registry, make_predictor, clock):
    registry.publish("neural", "neural-1")
    registry.publish("gbdt", "gbdt-1")
    predictor = make_predictor()
    del registry.active["neural"]
    predictor.refresh()
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock))
    assert (answer.served_by, answer.fallback_reason) == ("gbdt", "no_model")


def test_the_polling_thread_runs_its_exit_hook_in_its_own_thread_when_stopped(registry, features):
    """The wiring closes the polling thread's database connection this way (connections are per thread)."""
    from inference.serving.predictor import Predictor, PredictorConfig
    from tests.inference.serving.conftest import FakePrior

    exited_in: list[str] = []
    registry.publish("gbdt", "gbdt-1")
    predictor = Predictor(
        features=features, prior=FakePrior(), loader=registry.load, registry_reader=registry.read,
        config=PredictorConfig(poll_seconds=0.02),
        poll_thread_exit=lambda: exited_in.append(threading.current_thread().name),
    ).start()
    assert exited_in == []
    predictor.stop()
    assert exited_in == ["inference-model-poll"]


def test_the_polling_thread_runs_its_start_hook_before_its_first_poll_and_survives_its_failure(registry, features):
    """The wiring imports the model code this way: off the requests, before an activation needs it."""
    from inference.serving.predictor import Predictor, PredictorConfig
    from tests.inference.serving.conftest import FakePrior

    calls: list[str] = []

    def reader():
        calls.append("poll")
        return registry.read()

    def start_hook():
        calls.append(f"start in {threading.current_thread().name}")
        raise ImportError("an optional library missing")

    registry.publish("gbdt", "gbdt-1")
    predictor = Predictor(
        features=features, prior=FakePrior(), loader=registry.load, registry_reader=reader,
        config=PredictorConfig(poll_seconds=0.02), poll_thread_start=start_hook,
    ).start()
    registry.publish("gbdt", "gbdt-2")
    waited = time.monotonic()
    while predictor.loaded().get("gbdt") != "gbdt-2" and time.monotonic() - waited < 10:
        time.sleep(0.01)
    predictor.stop()
    # start() polls once itself; the thread then runs the hook once, before its own polls, and keeps polling
    assert calls[:2] == ["poll", "start in inference-model-poll"]
    assert calls.count("start in inference-model-poll") == 1
    assert predictor.loaded() == {"gbdt": "gbdt-2"}


def test_the_polling_threads_query_log_stays_empty_under_debug(registry, features, settings, transactional_db):
    """Under DEBUG Django logs every query on the connection and resets the log when a request starts, on
    the request's thread: the polling thread's own connection must not keep every poll's queries."""
    import time

    from django.db import connection

    from inference.serving.predictor import Predictor, PredictorConfig
    from inference.serving.wiring import _thread_query_log_reset
    from tests.inference.serving.conftest import FakePrior

    settings.DEBUG = True
    logged: list[int] = []

    def reader():  # a poll as the wiring's: queries on the polling thread's own connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        logged.append(len(connection.queries_log))
        return registry.read()

    registry.publish("gbdt", "gbdt-1")
    predictor = Predictor(
        features=features, prior=FakePrior(), loader=registry.load, registry_reader=reader,
        config=PredictorConfig(poll_seconds=0.01), poll_thread_after_poll=_thread_query_log_reset,
    ).start()
    try:
        deadline = time.monotonic() + 30
        while len(logged) < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        predictor.stop()
    assert len(logged) >= 12
    assert max(logged[1:]) <= 2, logged  # the first poll ran on the test's thread, in start()


def test_the_ranker_that_validated_best_serves_first_whatever_its_algorithm(registry, make_predictor, clock):
    """Taobao: LightGBM 0.345 against the network's 0.342 on the slice: LightGBM answers, no fallback."""
    neural = registry.publish("neural", "neural-1", validation_score=0.342)
    registry.publish("gbdt", "gbdt-1", validation_score=0.345)
    registry.publish("decayed", "decayed-1", validation_score=0.333)
    predictor = make_predictor()
    calls_after_warm_up = neural.calls
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock))
    assert (answer.served_by, answer.model_version, answer.fallback_reason) == ("gbdt", "gbdt-1", None)
    assert neural.calls == calls_after_warm_up  # the second best is not called when the best answers


def test_the_next_best_answers_when_the_best_fails_or_does_not_fit(registry, make_predictor, clock):
    registry.publish("neural", "neural-1", validation_score=0.342)
    gbdt = registry.publish("gbdt", "gbdt-1", validation_score=0.345)
    registry.publish("decayed", "decayed-1", validation_score=0.333)
    predictor = make_predictor()
    gbdt.fail = True
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock))
    assert (answer.served_by, answer.fallback_reason) == ("neural", "error")


def test_a_baseline_that_validated_better_than_a_learned_model_is_tried_first(
    registry, make_predictor, clock
):
    """``train --activate always`` can leave a learned model serving below the best baseline: the
    baseline answers first, the learned model only behind it."""
    registry.publish("gbdt", "gbdt-1", validation_score=0.30)
    registry.publish("frequency", "frequency-1", validation_score=0.31)
    answer = make_predictor().predict("alice", deadline=Deadline(1000, clock=clock))
    assert (answer.served_by, answer.fallback_reason) == ("frequency", "no_model")  # no neural version


def test_a_new_validation_score_of_the_same_versions_reorders_the_chain(registry, make_predictor, clock):
    registry.publish("neural", "neural-1", validation_score=0.35)
    registry.publish("gbdt", "gbdt-1", validation_score=0.34)
    predictor = make_predictor()
    assert predictor.predict("alice", deadline=Deadline(1000, clock=clock)).served_by == "neural"
    # a later training run judged both again on its slice and LightGBM came out ahead
    registry.active["gbdt"] = registry.active["gbdt"].__class__(
        "gbdt-1", registry.active["gbdt"].artifact_dir, 0.36
    )
    assert predictor.refresh() is True
    assert registry.loads == 2  # nothing reloaded: the same versions, another order
    answer = predictor.predict("alice", deadline=Deadline(1000, clock=clock))
    assert (answer.served_by, answer.model_version, answer.fallback_reason) == ("gbdt", "gbdt-1", None)

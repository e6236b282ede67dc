"""A model skipped for its recent p99 comes back when it is fast again, and stays out while it is slow."""

from __future__ import annotations

import time

from inference.serving.deadline import Deadline
from inference.serving.latency import LatencyWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_forgets_samples_older_than_its_age_limit():
    clock = Clock()
    window = LatencyWindow(256, max_age_s=30, clock=clock)
    for _ in range(10):
        window.record(50.0)  # a burst of slow calls
    clock.now += 20
    window.record(1.0)
    assert window.p99() == 50.0
    clock.now += 15  # the burst is now 35 s old, the fast call 15 s
    assert window.p99() == 1.0
    clock.now += 60
    assert window.p99() == 1.0  # the newest sample stays, however old, until a newer one comes
    assert len(window) == 1


def test_burst_of_slow_calls_is_forgotten_within_the_age_limit():
    """Three slow calls in 256 are the p99: the model is skipped, records nothing from requests, and
    must not stay out for longer than the age limit once probes find it fast."""
    clock = Clock()
    window = LatencyWindow(256, max_age_s=3, clock=clock)
    for _ in range(250):
        window.record(0.5)
    for _ in range(3):
        window.record(9.0)  # the worker was preempted during three calls
    assert window.p99() == 9.0
    clock.now += 2
    window.record(0.4)  # a background probe
    assert window.p99() == 9.0
    clock.now += 1.5  # the burst is 3.5 s old
    assert window.p99() == 0.4


def test_window_is_empty_only_before_the_first_sample():
    window = LatencyWindow(256, max_age_s=3, clock=Clock())
    assert window.p99() is None


def test_window_without_age_limit_keeps_its_samples():
    clock = Clock()
    window = LatencyWindow(256, clock=clock)
    window.record(50.0)
    clock.now += 3600
    assert window.p99() == 50.0


def test_model_skipped_for_its_p99_serves_again_once_probes_find_it_fast(registry, make_predictor, clock):
    neural = registry.publish("neural", "neural-1")
    neural.delay_s = 0.02  # the warm-up measures 20 ms
    registry.publish("gbdt", "gbdt-1")
    predictor = make_predictor(latency_max_age_s=0.05, poll_seconds=0)
    assert predictor.predict("alice", deadline=Deadline(10, clock=clock)).served_by == "gbdt"
    neural.delay_s = 0.0  # the contention is over
    clock.advance(0.1)  # the slow samples age out
    assert "neural" in predictor.probe_idle()
    answer = predictor.predict("alice", deadline=Deadline(10, clock=clock))
    assert (answer.served_by, answer.fallback_reason) == ("neural", None)


def test_slow_model_stays_out_and_no_request_pays_for_the_probes(registry, make_predictor, clock):
    neural = registry.publish("neural", "neural-1")
    neural.delay_s = 0.02
    registry.publish("gbdt", "gbdt-1")
    predictor = make_predictor(latency_max_age_s=0.05, poll_seconds=0)
    for _ in range(3):
        clock.advance(0.1)
        predictor.probe_idle()
        calls = neural.calls
        answer = predictor.predict("alice", deadline=Deadline(10, clock=clock))
        assert (answer.served_by, answer.fallback_reason) == ("gbdt", "over_budget"), answer.stage_ms
        assert neural.calls == calls  # the request itself did not call the slow model


def test_slow_model_stays_out_when_a_probe_is_late(registry, make_predictor, clock):
    """The probes run on the poll thread and can be late (a busy host): the slow model's last sample
    outlives the age limit, so no request meanwhile tries it and answers late."""
    neural = registry.publish("neural", "neural-1")
    neural.delay_s = 0.02
    registry.publish("gbdt", "gbdt-1")
    predictor = make_predictor(latency_max_age_s=0.05, poll_seconds=0)
    clock.advance(0.15)  # three age limits without a probe
    calls = neural.calls
    answer = predictor.predict("alice", deadline=Deadline(10, clock=clock))
    assert (answer.served_by, answer.fallback_reason) == ("gbdt", "over_budget")
    assert neural.calls == calls


def test_poll_thread_probes_a_skipped_model_more_often_than_it_polls_the_registry(registry, make_predictor, clock):
    """A model out for its p99 is timed every probe period (0.5 s by default), not every registry poll
    (2 s): after a burst it is back within about a second."""
    neural = registry.publish("neural", "neural-1")
    neural.delay_s = 0.02
    registry.publish("gbdt", "gbdt-1")
    reads = []
    reader = registry.read
    registry.read = lambda: reads.append(1) or reader()  # type: ignore[method-assign]
    predictor = make_predictor(latency_max_age_s=0.1, poll_seconds=5.0, probe_seconds=0.05)
    assert predictor.predict("alice", deadline=Deadline(10, clock=clock)).served_by == "gbdt"
    neural.delay_s = 0.0  # the contention is over
    deadline = time.monotonic() + 3.0
    while predictor.predict("alice", deadline=Deadline(10, clock=clock)).served_by != "neural":
        assert time.monotonic() < deadline, "the skipped model never came back"
        time.sleep(0.02)
    assert len(reads) <= 1  # the start-up read only: no registry poll was needed to bring it back

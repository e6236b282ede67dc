"""MicroBatcher on the CPU with a fake scorer: own answers, batching, bounded wait and queue, failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from inference.serving.batcher import BatcherFull, BatchTimeout, MicroBatcher


class FakeScorer:
    """Doubles each item; records the batches it saw; can block until released or raise."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail = False

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.entered.set()
        self.gate.wait(10)
        self.batches.append(list(items))
        if self.fail:
            raise RuntimeError("device lost")
        return [2 * item for item in items]


@pytest.fixture
def scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture
def batchers():
    made: list[MicroBatcher] = []

    def make(scorer: FakeScorer, **kwargs: object) -> MicroBatcher:
        batcher = MicroBatcher(scorer, **kwargs)
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.close()


def _wait_for_queued(batcher: MicroBatcher, count: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while batcher.queued() < count:
        assert time.monotonic() < deadline, f"{count} items never queued (queued: {batcher.queued()})"
        time.sleep(0.001)


def _concurrently(batcher: MicroBatcher, items: list[int], timeout_ms: float = 5000) -> dict[int, object]:
    answers: dict[int, object] = {}
    start = threading.Barrier(len(items))

    def call(item: int) -> None:
        start.wait()
        try:
            answers[item] = batcher.submit(item, timeout_ms=timeout_ms)
        except Exception as exc:  # recorded for the assertion
            answers[item] = exc

    threads = [threading.Thread(target=call, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return answers


def test_concurrent_callers_each_get_their_own_answer(scorer, batchers):
    batcher = batchers(scorer, max_batch=8, max_wait_ms=50)
    items = list(range(40))
    answers = _concurrently(batcher, items)
    assert answers == {item: 2 * item for item in items}
    assert sorted(x for batch in scorer.batches for x in batch) == items


def test_concurrent_callers_share_batches(scorer, batchers):
    scorer.gate.clear()  # hold the first batch so that the others queue up behind it
    batcher = batchers(scorer, max_batch=16, max_wait_ms=20)
    first = threading.Thread(target=batcher.submit, args=(100,), kwargs={"timeout_ms": 5000})
    first.start()
    assert scorer.entered.wait(5)
    waiting = threading.Thread(target=_concurrently, args=(batcher, list(range(12))))
    waiting.start()
    deadline = time.monotonic() + 5
    while batcher.queued() < 12 and time.monotonic() < deadline:
        time.sleep(0.001)
    scorer.gate.set()
    first.join(5)
    waiting.join(10)
    assert scorer.batches[0] == [100]
    assert sorted(scorer.batches[1]) == list(range(12))  # all twelve waiters in one batch
    assert batcher.largest_batch == 12


def test_batches_never_exceed_max_batch(scorer, batchers):
    scorer.gate.clear()
    batcher = batchers(scorer, max_batch=4, max_wait_ms=20)
    threading.Thread(target=batcher.submit, args=(100,), kwargs={"timeout_ms": 5000}).start()
    assert scorer.entered.wait(5)
    waiting = threading.Thread(target=_concurrently, args=(batcher, list(range(10))))
    waiting.start()
    _wait_for_queued(batcher, 10)
    scorer.gate.set()
    waiting.join(10)
    assert max(len(batch) for batch in scorer.batches) == 4
    assert sorted(x for batch in scorer.batches[1:] for x in batch) == list(range(10))


def test_lone_request_is_not_held_for_a_full_batch(scorer, batchers):
    # a 10-second wait bound would hang this call if the batcher waited for a full batch; it is bounded
    # by max_wait_ms from the first item's arrival, so one request alone is answered
    batcher = batchers(scorer, max_batch=64, max_wait_ms=0.5)
    assert batcher.submit(21, timeout_ms=10_000) == 42
    assert scorer.batches == [[21]]


def test_full_queue_falls_through_with_a_reason(scorer, batchers):
    scorer.gate.clear()
    batcher = batchers(scorer, max_batch=1, max_wait_ms=0, max_queue=2)
    threading.Thread(target=batcher.submit, args=(0,), kwargs={"timeout_ms": 5000}).start()
    assert scorer.entered.wait(5)  # the worker is busy; the next two fill the queue
    fillers = [
        threading.Thread(target=batcher.submit, args=(i,), kwargs={"timeout_ms": 5000}) for i in (1, 2)
    ]
    for thread in fillers:
        thread.start()
    _wait_for_queued(batcher, 2)
    with pytest.raises(BatcherFull) as caught:
        batcher.submit(3, timeout_ms=5000)
    assert caught.value.reason == "over_budget"
    scorer.gate.set()
    for thread in fillers:
        thread.join(5)
    assert 3 not in [x for batch in scorer.batches for x in batch]


def test_caller_past_its_timeout_gets_timeout_not_a_late_answer(scorer, batchers):
    scorer.gate.clear()
    batcher = batchers(scorer, max_batch=8, max_wait_ms=0)
    with pytest.raises(BatchTimeout) as caught:
        batcher.submit(5, timeout_ms=20)
    assert caught.value.reason == "timeout"
    scorer.gate.set()
    assert batcher.submit(6, timeout_ms=5000) == 12  # the batcher still serves afterwards


def test_scorer_failure_reaches_every_caller_of_the_batch_and_the_worker_survives(scorer, batchers):
    scorer.fail = True
    batcher = batchers(scorer, max_batch=8, max_wait_ms=20)
    answers = _concurrently(batcher, [1, 2, 3])
    assert all(isinstance(a, RuntimeError) and "device lost" in str(a) for a in answers.values())
    scorer.fail = False
    assert batcher.submit(4, timeout_ms=5000) == 8


def test_wrong_number_of_results_is_an_error_not_a_mismatch(batchers):
    batcher = batchers(lambda items: [0] * (len(items) + 1), max_batch=8, max_wait_ms=20)  # type: ignore[arg-type]
    answers = _concurrently(batcher, [1, 2])
    assert all(isinstance(a, RuntimeError) for a in answers.values())


def test_closed_batcher_refuses_new_work(scorer):
    batcher = MicroBatcher(scorer)
    batcher.close()
    with pytest.raises(BatcherFull):
        batcher.submit(1, timeout_ms=100)


# --- the predictor with a batched model -----------------------------------------------------------
class BatchedFake:
    """A neural model double whose score goes through a MicroBatcher over FakeScorer."""

    def __init__(self, batcher: MicroBatcher, timeout_ms: float) -> None:
        self.batcher = batcher
        self.timeout_ms = timeout_ms

    def predict(self, features: dict, *, now: float, top: int) -> list[tuple[str, float]]:
        doubled = self.batcher.submit(len(features), timeout_ms=self.timeout_ms)
        return [("sports", 1.0 / (1.0 + doubled))][:top]


def _batched_chain(registry, make_predictor, batcher: MicroBatcher, timeout_ms: float = 5000):
    registry.publish("neural", "neural-1")
    registry.publish("gbdt", "gbdt-1")
    registry.models["neural-1"] = BatchedFake(batcher, timeout_ms)  # type: ignore[assignment]
    return make_predictor()


def test_predictor_serves_through_the_batcher(scorer, batchers, registry, make_predictor):
    from inference.serving.deadline import Deadline

    predictor = _batched_chain(registry, make_predictor, batchers(scorer, max_wait_ms=0.5))
    answer = predictor.predict("alice", deadline=Deadline(1000))
    assert (answer.served_by, answer.fallback_reason) == ("neural", None)
    assert answer.scores == (("sports", 1.0 / (1.0 + 4)),)  # alice has two categories: 2 * 2


def test_full_batcher_queue_falls_through_to_gbdt_over_budget_without_opening_the_breaker(
    scorer, batchers, registry, make_predictor
):
    from inference.serving.deadline import Deadline

    batcher = batchers(scorer, max_batch=1, max_wait_ms=0, max_queue=1)
    predictor = _batched_chain(registry, make_predictor, batcher)
    scorer.gate.clear()
    scorer.entered.clear()  # the predictor's warm-up already went through the scorer
    threading.Thread(target=batcher.submit, args=(0,), kwargs={"timeout_ms": 5000}).start()
    assert scorer.entered.wait(5)
    threading.Thread(target=batcher.submit, args=(1,), kwargs={"timeout_ms": 5000}).start()
    _wait_for_queued(batcher, 1)
    answers = [predictor.predict("alice", deadline=Deadline(1000)) for _ in range(8)]
    scorer.gate.set()
    assert {(a.served_by, a.fallback_reason) for a in answers} == {("gbdt", "over_budget")}
    assert predictor.breaker_states()["neural"] == "closed"


def test_late_batch_falls_through_to_gbdt_as_a_timeout(scorer, batchers, registry, make_predictor):
    from inference.serving.deadline import Deadline

    predictor = _batched_chain(registry, make_predictor, batchers(scorer, max_wait_ms=0), timeout_ms=20)
    scorer.gate.clear()
    answer = predictor.predict("alice", deadline=Deadline(1000))
    scorer.gate.set()
    assert (answer.served_by, answer.fallback_reason) == ("gbdt", "timeout")

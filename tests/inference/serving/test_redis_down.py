"""The real Redis feature store going away mid-traffic: answers degrade to the population prior, never fail."""

from __future__ import annotations

import random
import subprocess

import pytest

from inference.events import EventRecord
from inference.serving.adapters import PriorAdapter, StoreAdapter
from inference.serving.deadline import Deadline
from inference.serving.predictor import Predictor, PredictorConfig
from inference.store import feature_store, serving_state_reader

pytestmark = pytest.mark.requires_redis


def test_killed_redis_gives_a_degraded_prior_answer(private_redis, registry):
    store = feature_store(url=private_redis)
    rng = random.Random(3)
    store.observe(
        [
            EventRecord(
                user_id=f"u{n % 5}", ts=1.7e9 + n, type="page_view", categories=(f"c{rng.randrange(4)}",)
            )
            for n in range(200)
        ]
    )
    adapter = StoreAdapter(serving_state_reader(url=private_redis))
    registry.publish("gbdt", "gbdt-1")
    predictor = Predictor(
        features=adapter,
        prior=PriorAdapter(adapter),
        loader=lambda name, path: _PassThrough(),
        registry_reader=registry.read,
        config=PredictorConfig(poll_seconds=0),
    ).start(background=False)
    healthy = predictor.predict("u1", deadline=Deadline(1000), top=3)
    assert (healthy.served_by, healthy.fallback_reason) == ("gbdt", "no_model")

    port = private_redis.rsplit(":", 1)[1].split("/")[0]
    subprocess.run(
        ["redis-cli", "-p", port, "shutdown", "nosave"], capture_output=True, timeout=10, check=False
    )
    degraded = predictor.predict("u1", deadline=Deadline(1000), top=3)
    assert (degraded.served_by, degraded.fallback_reason) == ("prior", "error")
    assert len(degraded.scores) == 3  # the population the store last reported
    assert {c for c, _ in degraded.scores} <= {"c0", "c1", "c2", "c3"}


def test_a_hung_redis_costs_one_read_timeout_then_the_prior_answers_at_once(
    private_redis_server, registry, caplog, fresh_inference
):
    """A Redis that accepts connections and answers nothing (SIGSTOP): one read waits for its timeout, the
    rest fail fast (inference/redis_clients.py) and the prior answers."""
    import logging

    url = private_redis_server.url
    rng = random.Random(3)
    feature_store(url=url).observe(
        [EventRecord(user_id=f"u{n % 5}", ts=1.7e9 + n, type="page_view", categories=(f"c{rng.randrange(4)}",))
         for n in range(200)]
    )
    adapter = StoreAdapter(serving_state_reader(url=url))
    registry.publish("gbdt", "gbdt-1")
    predictor = Predictor(
        features=adapter, prior=PriorAdapter(adapter), loader=lambda name, path: _PassThrough(),
        registry_reader=registry.read, config=PredictorConfig(poll_seconds=0),
    ).start(background=False)
    assert predictor.predict("u1", deadline=Deadline(1000), top=3).served_by == "gbdt"

    private_redis_server.pause()
    caplog.set_level(logging.WARNING, logger="inference.serving.predictor")
    answers = [predictor.predict(f"u{n % 5}", deadline=Deadline(1000), top=3) for n in range(20)]
    assert all((a.served_by, a.fallback_reason) == ("prior", "error") for a in answers)
    assert all(len(a.scores) == 3 for a in answers)  # the population the store last reported
    reads = [r.getMessage() for r in caplog.records if "feature_store_unavailable" in r.getMessage()]
    assert len(reads) == 20
    assert sum("not tried again" not in m for m in reads) == 1  # one read waited for the timeout


class _PassThrough:
    """A model double: ranks the user's own 1-day decayed counts."""

    def predict(self, features, *, now, top):
        if features.user is None:
            return [("c0", 0.5)]
        table = features.user.decayed[1]
        total = sum(table.values()) or 1.0
        return sorted(((c, v / total) for c, v in table.items()), key=lambda kv: -kv[1])[:top]

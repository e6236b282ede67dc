"""Inference's composition root (``inference.backends``): one object holds what a process of inference keeps,
so one swap replaces all of it, a reader made earlier follows the swap, and a forked worker builds its own."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from django.conf import settings

from inference.backends import Backends, backends, backends_close, backends_use
from inference.events import EventRecord
from inference.redis_clients import server_down_remaining
from inference.rest.throttling import window_hit
from inference.store import feature_store, serving_state_reader

T0 = 1_700_000_000.0


@pytest.fixture
def embedded_store(settings: Any) -> None:
    settings.INFERENCE = {**settings.INFERENCE, "STORE": "memory", "STORE_REBUILD_ON_START": False}
    settings.REDIS_URL = ""


def _views(user: str, n: int) -> list[EventRecord]:
    return [EventRecord(user, T0 + i, "page_view", ("sports",), item_id=f"i{i}") for i in range(n)]


def _mark_down(host: str, port: int) -> None:
    state = backends()
    with state.redis_lock:
        state.redis_down_until[(host, port)] = time.monotonic() + 60


def test_one_swap_replaces_the_store_the_counters_the_marks_and_the_taxonomy(embedded_store: None, fresh_inference: Backends):
    feature_store().observe(_views("swapped", 3))
    assert window_hit("backends-test", limit=2, period_s=60) == 0
    assert window_hit("backends-test", limit=2, period_s=60) == 0
    assert window_hit("backends-test", limit=2, period_s=60) > 0  # the third hit is over the limit
    _mark_down("10.255.0.1", 6379)
    fresh_inference.taxonomy = (time.monotonic(), frozenset({"sports"}))
    reader = serving_state_reader()
    assert reader("swapped")[0] is not None  # the visitor is known

    other = Backends()
    replaced = backends_use(other)
    try:
        assert replaced is fresh_inference
        assert reader("swapped")[0] is None  # the reader made before the swap reads the new, empty store
        assert window_hit("backends-test", limit=2, period_s=60) == 0  # a fresh window
        assert server_down_remaining("10.255.0.1", 6379) == 0.0  # no mark carried over
        assert backends().taxonomy == (0.0, frozenset())  # read again on next use
    finally:
        backends_close(other)
        backends_use(fresh_inference)
    # and back: the first object's state is whole again
    assert reader("swapped")[0] is not None
    assert server_down_remaining("10.255.0.1", 6379) > 0
    assert window_hit("backends-test", limit=2, period_s=60) > 0


def test_a_forked_worker_builds_its_own_backends(embedded_store: None, fresh_inference: Backends):
    """A gunicorn or Celery child forked after the parent built its state shares none of it: not the store's
    contents, not the guard's marks (the child tries a server its parent gave up on for itself)."""
    feature_store().observe(_views("parent-only", 2))
    _mark_down("10.255.0.2", 6379)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it sees, then leave without running the parent's teardown
        try:
            seen = [
                backends() is not fresh_inference,
                server_down_remaining("10.255.0.2", 6379) == 0.0,
                serving_state_reader()("parent-only")[0] is None,
            ]
            os.write(write, bytes(int(x) for x in seen))
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert list(answer) == [1, 1, 1]
    # the parent's state is untouched by the child's
    assert backends() is fresh_inference and server_down_remaining("10.255.0.2", 6379) > 0


@pytest.mark.requires_redis
def test_closing_a_swapped_out_object_closes_its_redis_clients(fresh_inference: Backends):
    from inference.redis_clients import redis_client

    client = redis_client(settings.REDIS_URL)
    assert client.ping()
    assert fresh_inference.redis_clients  # kept by the current object
    backends_close(fresh_inference)
    assert fresh_inference.redis_clients == {}
    assert redis_client(settings.REDIS_URL) is not client  # a new client, in the same object

"""The interests API's rate limit: counted per client per fixed window, in Redis when there is one.

Redis away (never started, or killed mid-run) must not fail a request: the window is counted in the
web process instead, so requests are still answered and the limit still holds per process.
"""

from __future__ import annotations

import pytest
from django.test import override_settings

from inference.redis_clients import server_down
from inference.rest import throttling
from inference.rest.throttling import InterestsRateThrottle, throttle_counters_reset

pytestmark = pytest.mark.django_db

URL = "/api/v1/users/alice/interests"
NOW = 1_800_000_000.0  # a fixed clock: all requests of a test fall in one window


@pytest.fixture(autouse=True)
def three_per_minute(monkeypatch):
    monkeypatch.setattr(InterestsRateThrottle, "rate", "3/minute", raising=False)
    monkeypatch.setattr(InterestsRateThrottle, "timer", staticmethod(lambda: NOW))
    throttle_counters_reset()
    yield
    throttle_counters_reset()


def _statuses(client, n: int) -> list[int]:
    return [client.get(URL).status_code for _ in range(n)]


def test_without_redis_the_limit_holds_and_the_refusal_says_when_to_retry(token_client, settings):
    settings.REDIS_URL = ""
    assert _statuses(token_client, 3) == [200, 200, 200]
    refused = token_client.get(URL)
    assert refused.status_code == 429
    assert "throttled" in refused.json()["errors"]["detail"].lower()  # the API's one error shape
    assert 0 < int(refused["Retry-After"]) <= 60


def test_the_next_window_starts_a_fresh_count(token_client, settings, monkeypatch):
    settings.REDIS_URL = ""
    assert _statuses(token_client, 4) == [200, 200, 200, 429]
    monkeypatch.setattr(InterestsRateThrottle, "timer", staticmethod(lambda: NOW + 60))
    assert _statuses(token_client, 1) == [200]


def test_clients_are_counted_apart(token_client, staff_client, settings):
    settings.REDIS_URL = ""
    assert _statuses(token_client, 4) == [200, 200, 200, 429]
    assert _statuses(staff_client, 1) == [200]


def test_counts_live_in_redis_shared_by_every_web_process(token_client, private_redis):
    import redis

    with override_settings(REDIS_URL=private_redis):
        assert _statuses(token_client, 2) == [200, 200]
        throttle_counters_reset()  # as another worker: no client, no in-process counts of its own
        assert _statuses(token_client, 2) == [200, 429]
        keys = redis.Redis.from_url(private_redis).keys("throttle_interests_*")
        assert len(keys) == 1
        assert int(redis.Redis.from_url(private_redis).get(keys[0])) == 4
        assert redis.Redis.from_url(private_redis).pttl(keys[0]) > 0  # windows expire on their own


def test_redis_killed_mid_run_still_serves_and_still_limits(token_client, private_redis):
    with override_settings(REDIS_URL=private_redis):
        assert _statuses(token_client, 1) == [200]
        _kill_private_redis(private_redis)
        # counted in-process from here on: served, never a 5xx, and the limit still applies
        assert _statuses(token_client, 4) == [200, 200, 200, 429]


def test_an_unreachable_redis_costs_one_attempt_then_is_left_alone(token_client, monkeypatch):
    from tests.conftest import free_port

    calls = []
    real_hit = throttling.RedisWindowCounter.hit

    def counting_hit(self, key, **kwargs):
        calls.append(server_down(self._client))  # the client guard's mark, which the counter obeys
        return real_hit(self, key, **kwargs)

    monkeypatch.setattr(throttling.RedisWindowCounter, "hit", counting_hit)
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"):
        assert _statuses(token_client, 4) == [200, 200, 200, 429]
    assert calls[0] is False  # the first request tried Redis
    assert all(calls[1:])  # the next ones knew it was away and did not wait on it


def test_a_busy_client_is_counted_in_batches_and_held_to_its_limit(private_redis):
    import redis

    counter = throttling.RedisWindowCounter(private_redis)
    limit = 10_000  # sent every 100 hits
    window = {"limit": limit, "ttl_ms": 60_000, "expires_at": NOW + 60}
    for _ in range(250):
        counter.hit("w", **window)
    assert int(redis.Redis.from_url(private_redis).get("w")) in range(150, 251)  # at most 99 held back
    counts = [counter.hit("w", **window) for _ in range(limit)]
    allowed = sum(1 for count in counts if count <= limit)
    assert allowed == limit - 250  # one process: judged on Redis's exact total near the limit


def test_several_processes_pass_a_limit_by_at_most_their_held_back_hits(private_redis):
    processes = [throttling.RedisWindowCounter(private_redis) for _ in range(3)]
    limit = 5_000  # each sends every 50 hits
    window = {"limit": limit, "ttl_ms": 60_000, "expires_at": NOW + 60}
    allowed = 0
    for i in range(3 * limit):
        count = processes[i % 3].hit("w", **window)
        allowed += count is not None and count <= limit
    assert limit <= allowed <= limit + 2 * throttling.RedisWindowCounter.sync_every(limit)


def _kill_private_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url).shutdown(nosave=True)
    except redis.ConnectionError:
        pass  # SHUTDOWN closes the connection as the server exits

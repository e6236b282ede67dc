"""A Redis that hangs (accepts connections, answers nothing) costs one timeout per process per cooldown;
every other call fails at once, and the site's degraded paths answer instead of waiting."""

from __future__ import annotations

import logging

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from inference import redis_clients as redis_guard
from inference.redis_clients import GuardedConnection, server_down_remaining

pytestmark = pytest.mark.requires_redis


@pytest.fixture(autouse=True)
def short_cooldown(monkeypatch, fresh_inference):
    """A short cooldown, and this test's own marks and clients (``fresh_inference``)."""
    monkeypatch.setattr(redis_guard, "COOLDOWN_S", 0.5)


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=0.2, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0),
        connection_class=GuardedConnection,
    )


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    return host, int(port)


def test_one_timeout_then_fast_failures_then_back_when_it_answers(private_redis_server, caplog):
    caplog.set_level(logging.WARNING, logger="inference.redis_clients")
    client = _client(private_redis_server.url)
    assert client.ping()
    private_redis_server.pause()
    with pytest.raises(redis.TimeoutError):
        client.ping()  # the one call that waits for the timeout
    for _ in range(3):
        with pytest.raises(redis.ConnectionError, match="not tried again"):
            client.ping()  # refused without touching the network
    other = _client(private_redis_server.url)  # another client of the same server in this process
    with pytest.raises(redis.ConnectionError, match="not tried again"):
        other.get("anything")
    assert server_down_remaining(*_host_port(private_redis_server.url)) > 0

    private_redis_server.resume()
    while server_down_remaining(*_host_port(private_redis_server.url)) > 0:
        pass  # the cooldown (0.5 s here) runs out
    assert client.set("k", "v") and other.get("k") == b"v"
    assert server_down_remaining(*_host_port(private_redis_server.url)) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum("redis.unavailable" in m for m in messages) == 1  # said once per outage, not per call
    assert sum("redis.available" in m for m in messages) == 1


def test_a_redis_error_reply_is_an_answer_not_an_outage(private_redis_server):
    client = _client(private_redis_server.url)
    client.set("text", "x")
    with pytest.raises(redis.ResponseError):
        client.incr("text")
    assert client.ping()
    assert server_down_remaining(*_host_port(private_redis_server.url)) == 0


def test_the_ad_ledger_refuses_at_once_after_one_timeout(private_redis_server):
    from adsite.ads.accounting import LedgerUnavailable, RedisLedger

    ledger = RedisLedger(private_redis_server.url)
    ledger.snapshot(campaign_ids=[1], creative_ids=[1], user_id="u", now=1.7e9)
    private_redis_server.pause()
    errors = []
    for _ in range(5):
        with pytest.raises(LedgerUnavailable) as caught:
            ledger.snapshot(campaign_ids=[1], creative_ids=[1], user_id="u", now=1.7e9)
        errors.append(str(caught.value))
    assert sum("not tried again" not in e for e in errors) == 1

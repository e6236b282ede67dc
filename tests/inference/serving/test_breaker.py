"""Circuit breaker: closed -> open -> half-open -> closed (or open again)."""

from __future__ import annotations

from inference.serving.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def opened(clock: Clock) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=5, clock=clock)
    breaker.record_failure()
    assert breaker.allow() and breaker.state == "closed"
    breaker.record_failure()
    return breaker


def test_consecutive_failures_open_it():
    breaker = opened(Clock())
    assert breaker.state == "open"
    assert not breaker.allow()


def test_a_success_resets_the_failure_count():
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=5, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_half_opens_after_the_cooldown_with_one_trial_at_a_time():
    clock = Clock()
    breaker = opened(clock)
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow()  # a second caller waits for the trial's outcome


def test_successful_trial_closes_it():
    clock = Clock()
    breaker = opened(clock)
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow() and breaker.allow()


def test_failed_trial_opens_it_again_for_a_new_cooldown():
    clock = Clock()
    breaker = opened(clock)
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 4
    assert not breaker.allow()


def test_released_trial_lets_the_next_caller_try():
    clock = Clock()
    breaker = opened(clock)
    clock.now += 5
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()

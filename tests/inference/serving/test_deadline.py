"""The deadline tells how much time is left and when it has run out."""

from __future__ import annotations

import time

from django.test import override_settings

from inference.serving.deadline import Deadline


def test_time_left_shrinks_and_goes_negative():
    deadline = Deadline(1.0)
    first = deadline.remaining_ms()
    time.sleep(0.002)
    assert deadline.remaining_ms() < first
    assert deadline.remaining_ms() < 0
    assert deadline.expired()
    assert deadline.elapsed_ms() >= 2.0


def test_budget_comes_from_settings():
    with override_settings(INFERENCE={"BUDGET_MS": 42.0}):
        assert Deadline.from_settings().budget_ms == 42.0

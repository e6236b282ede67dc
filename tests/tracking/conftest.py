"""Fixtures for the tracking tests: a recorder for what reaches inference, the embedded path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


class ObservedRecords:
    def __init__(self) -> None:
        self.records: list[Any] = []
        self.without_answers: list[Any] = []  # handed over with answers_refresh=False (an import)

    def __call__(self, records: Any, *, answers_refresh: bool = True) -> None:
        self.records.extend(records)
        if not answers_refresh:
            self.without_answers.extend(records)


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> Iterator[ObservedRecords]:
    """Records what tracking hands to ``inference.api.events_observe``."""
    from inference import api as inference_api

    recorder = ObservedRecords()
    monkeypatch.setattr(inference_api, "events_observe", recorder)
    yield recorder


@pytest.fixture
def embedded(settings: Any) -> None:
    """Force the embedded (database) path even when the suite runs in services mode."""
    settings.TRACKING = {**settings.TRACKING, "BUFFER": "database"}

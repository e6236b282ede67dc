"""The fault battery's stack: its own Redis (AOF), its own PostgreSQL cluster and the site on top.

Started once per run (``make test-faults``, or ``ADSITE_FAULTS=1 pytest -m faults tests/faults``);
the scenarios run in file order against it, each with traffic of its own (its own user-id prefix), so
their counts stay separate. The figures of each scenario go to ``var/faults/last-run.json``
(``ADSITE_FAULTS_REPORT`` to put them elsewhere); docs/reliability.md quotes them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.stack import ROOT, Stack, stack_up

ENABLED = os.environ.get("ADSITE_FAULTS") == "1"
REPORT = Path(os.environ.get("ADSITE_FAULTS_REPORT", str(ROOT / "var" / "faults" / "last-run.json")))


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    if not ENABLED:
        pytest.skip("the fault battery runs under `make test-faults` (ADSITE_FAULTS=1)")
    with stack_up(
        keep=os.environ.get("ADSITE_FAULTS_KEEP") == "1",
        # one flush per second; an entry whose consumer looks alive is reclaimed only after 10 minutes,
        # so what drains after a killed flush was taken over because its process is gone
        TRACKING_FLUSH_SECONDS="1",
        TRACKING_FLUSH_RECLAIM_IDLE_MS="600000",
        TRACKING_FLUSH_BATCH="1000",
        LOG_LEVEL="INFO",
    ) as running:
        yield running


_figures: dict[str, Any] = {}


@pytest.fixture(scope="session")
def record() -> Iterator[Any]:
    """``record(scenario, figures)``: keep a scenario's figures for the run's report."""

    def add(name: str, figures: dict[str, Any]) -> None:
        _figures[name] = figures

    yield add
    if _figures:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        previous: dict[str, Any] = {}
        if REPORT.exists():
            try:
                previous = json.loads(REPORT.read_text()).get("scenarios", {})
            except ValueError:
                previous = {}
        REPORT.write_text(
            json.dumps(
                {
                    "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "scenarios": {**previous, **_figures},
                },
                indent=2,
                sort_keys=True,
            )
        )

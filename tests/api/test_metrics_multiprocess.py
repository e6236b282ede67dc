"""/metrics adds up the values of several worker processes (PROMETHEUS_MULTIPROC_DIR), as under gunicorn."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")
django.setup()
from inference.serving import metrics
metrics.SERVED_TOTAL.labels("gbdt").inc(3)
metrics.BREAKER_STATE.labels("neural").set({state})
metrics.PREDICT_SECONDS.labels("gbdt", "total").observe(0.0004)
"""

SCRAPE = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")
django.setup()
from django.test import RequestFactory
from adsite.ops.views import metrics
print(metrics(RequestFactory().get("/metrics")).content.decode())
"""


def test_metrics_from_two_worker_processes_are_aggregated(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "ADSITE_VAR_DIR": str(tmp_path / "var")}
    for state in (0, 2):
        subprocess.run(
            [sys.executable, "-c", WORKER.format(state=state)], cwd=ROOT, env=env, check=True, timeout=120
        )
    text = subprocess.run(
        [sys.executable, "-c", SCRAPE],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout
    assert 'inference_served_total{served_by="gbdt"} 6.0' in text
    assert 'inference_predict_seconds_count{model="gbdt",stage="total"} 2.0' in text


SNAPSHOT = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")
django.setup()
from adsite.dashboard.rollup import registry_sample
print(registry_sample()['inference_served_total{served_by=gbdt}'])
"""


def test_a_file_left_empty_by_a_killed_process_leaves_the_others_metrics_readable(tmp_path):
    """prometheus_client creates a process's file and only then sizes it: a process killed in between (a
    Celery child SIGKILLed as it starts) leaves it empty, and every read of every metric raised, so /metrics
    and the dashboard's snapshots failed while it lay there (prometheus/client_python#1199)."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "ADSITE_VAR_DIR": str(tmp_path / "var")}
    for state in (0, 2):
        subprocess.run(
            [sys.executable, "-c", WORKER.format(state=state)], cwd=ROOT, env=env, check=True, timeout=120
        )
    (tmp_path / "counter_4194301.db").write_bytes(b"")  # the killed process's file, never sized
    with pytest.raises(Exception):  # noqa: B017 - the library's own reader: any error, the whole read lost
        list(MultiProcessCollector(None, path=str(tmp_path)).collect())
    text = subprocess.run([sys.executable, "-c", SCRAPE], cwd=ROOT, env=env, check=True, timeout=120,
                          capture_output=True, text=True).stdout
    assert 'inference_served_total{served_by="gbdt"} 6.0' in text
    sampled = subprocess.run([sys.executable, "-c", SNAPSHOT], cwd=ROOT, env=env, check=True, timeout=120,
                             capture_output=True, text=True).stdout
    assert float(sampled.strip().splitlines()[-1]) == 6.0

"""/metrics adds up the values of several worker processes (PROMETHEUS_MULTIPROC_DIR), as under gunicorn."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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

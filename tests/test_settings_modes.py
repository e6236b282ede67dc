"""The one rule that decides the mode (README "Modes"): services with DATABASE_URL and REDIS_URL,
embedded without REDIS_URL, and REDIS_URL alone refused, by the settings and by ``scripts/serve.sh``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = "from django.conf import settings; print(settings.ADSITE_MODE, settings.TRACKING['BUFFER'])"


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update({"DJANGO_SETTINGS_MODULE": "adsite.settings", "ADSITE_VAR_DIR": str(tmp_path), **values})
    return env


def _settings_probe(tmp_path: Path, **values: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=_env(tmp_path, **values), capture_output=True, text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "embedded database"),
        ({"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x"}, "embedded database"),
        (
            {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x", "REDIS_URL": "redis://127.0.0.1:6379/12"},
            "services redis",
        ),
    ],
)
def test_settings_pick_the_mode_from_both_urls(tmp_path: Path, values: dict[str, str], expected: str) -> None:
    probe = _settings_probe(tmp_path, **values)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == expected


def test_settings_refuse_redis_url_without_database_url(tmp_path: Path) -> None:
    probe = _settings_probe(tmp_path, REDIS_URL="redis://127.0.0.1:6379/12")
    assert probe.returncode != 0
    assert "ImproperlyConfigured" in probe.stderr
    assert "REDIS_URL is set but DATABASE_URL is not" in probe.stderr
    assert "Modes" in probe.stderr


def test_serve_refuses_redis_url_without_database_url_before_serving(tmp_path: Path) -> None:
    served = subprocess.run(
        ["scripts/serve.sh"],
        cwd=ROOT,
        env=_env(tmp_path, REDIS_URL="redis://127.0.0.1:6379/12", PORT="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode == 2
    assert "embedded mode" not in served.stdout
    assert "REDIS_URL is set but DATABASE_URL is not" in served.stderr

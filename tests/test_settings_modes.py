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
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "REDIS_CLUSTER", "CELERY_BROKER_URL"}
    }
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
        (
            {
                "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x",
                "REDIS_URL": "redis://127.0.0.1:7000/0",
                "REDIS_CLUSTER": "1",
                "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
            },
            "scale-out redis",
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


BROKER_PROBE = "from django.conf import settings; print(settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND)"
SERVICES = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x", "REDIS_URL": "redis://127.0.0.1:6379/12"}


def _broker_probe(tmp_path: Path, **values: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in _env(tmp_path, **values).items() if k != "CELERY_BROKER_URL" or k in values}
    return subprocess.run(
        [sys.executable, "-c", BROKER_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_services_mode_keeps_redis_as_its_broker(tmp_path: Path) -> None:
    probe = _broker_probe(tmp_path, **SERVICES)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["redis://127.0.0.1:6379/12", "redis://127.0.0.1:6379/12"]


@pytest.mark.parametrize("broker", [None, "redis://127.0.0.1:6379/12"])
def test_scale_out_mode_refuses_a_redis_broker_or_none(tmp_path: Path, broker: str | None) -> None:
    values = {**SERVICES, "REDIS_CLUSTER": "1", **({"CELERY_BROKER_URL": broker} if broker else {})}
    probe = _broker_probe(tmp_path, **values)
    assert probe.returncode != 0
    assert "ImproperlyConfigured" in probe.stderr
    assert "CELERY_BROKER_URL" in probe.stderr and "RabbitMQ" in probe.stderr


def test_scale_out_mode_sends_tasks_through_rabbitmq_and_keeps_no_results(tmp_path: Path) -> None:
    broker = "amqp://guest:guest@127.0.0.1:5672/adsite"
    probe = _broker_probe(tmp_path, **SERVICES, REDIS_CLUSTER="1", CELERY_BROKER_URL=broker)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [broker, "None"]


def test_scale_out_mode_caches_on_the_cluster(tmp_path: Path) -> None:
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings; "
            "print(settings.CACHES['default']['BACKEND'], settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND)",
        ],
        cwd=ROOT,
        env=_env(
            tmp_path,
            DATABASE_URL="postgres://postgres@127.0.0.1:5432/x",
            REDIS_URL="redis://127.0.0.1:7000/0",
            REDIS_CLUSTER="1",
            CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [
        "inference.redis_clients.ClusterRedisCache", "amqp://guest:guest@127.0.0.1:5672//", "None"
    ]

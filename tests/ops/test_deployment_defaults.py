"""Deployment defaults, as an attacker would probe a site someone forgot to configure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


def _settings_in_a_fresh_process(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))}
    clean.update({"DJANGO_SETTINGS_MODULE": "adsite.settings", "ADSITE_VAR_DIR": str(tmp_path), **env})
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps({'debug': settings.DEBUG, 'key': settings.SECRET_KEY, "
        "'proxy': settings.SECURE_PROXY_SSL_HEADER, 'fallbacks': settings.SECRET_KEY_FALLBACKS}))"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


def test_nothing_set_is_not_debug_and_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    result = _settings_in_a_fresh_process(tmp_path)
    assert result.returncode != 0 and "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_settings_trust_no_proxy_header_unless_told(tmp_path: Path) -> None:
    key = "k" * 50
    plain = json.loads(_settings_in_a_fresh_process(tmp_path, DJANGO_SECRET_KEY=key).stdout)
    assert plain["debug"] is False and plain["proxy"] is None
    behind = json.loads(_settings_in_a_fresh_process(
        tmp_path, DJANGO_SECRET_KEY=key, DJANGO_TRUST_X_FORWARDED_PROTO="1", DJANGO_SECRET_KEY_FALLBACKS="old-1,old-2",
    ).stdout)
    assert behind["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"] and behind["fallbacks"] == ["old-1", "old-2"]


def test_debug_without_a_key_uses_a_private_random_one_not_a_public_constant(tmp_path: Path) -> None:
    first = json.loads(_settings_in_a_fresh_process(tmp_path, DJANGO_DEBUG="1").stdout)
    again = json.loads(_settings_in_a_fresh_process(tmp_path, DJANGO_DEBUG="1").stdout)
    other = json.loads(_settings_in_a_fresh_process(tmp_path / "other", DJANGO_DEBUG="1").stdout)
    assert first["key"] == again["key"] != other["key"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert first["key"] not in (ROOT / "adsite" / "settings.py").read_text()


@pytest.mark.django_db
def test_the_demo_password_is_refused_outside_debug(settings: Any) -> None:
    get_user_model().objects.create_user("admin", password="admin", is_staff=True, is_superuser=True)
    settings.DEBUG = False
    client = Client()
    assert not client.login(username="admin", password="admin")
    response = client.post("/admin/login/", {"username": "admin", "password": "admin", "next": "/admin/"})
    assert response.status_code == 200  # the form again, not a redirect into the admin
    with pytest.raises(Exception, match="adsite.E001"):
        call_command("check", "--deploy", "--fail-level", "ERROR")
    settings.DEBUG = True
    assert client.login(username="admin", password="admin")  # the demo, in DEBUG


def test_metrics_are_not_public(settings: Any) -> None:
    assert Client(REMOTE_ADDR="203.0.113.5").get("/metrics").status_code == 403
    assert Client().get("/metrics").status_code == 200  # from this host
    settings.METRICS_ACCESS, settings.METRICS_TOKEN = "token", "s3cret-token"
    remote = Client(REMOTE_ADDR="203.0.113.5")
    assert remote.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert remote.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


@pytest.mark.django_db
def test_readyz_names_a_failure_without_its_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db.backends.utils import CursorWrapper

    def broken(self: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError("could not connect to server at db.internal:5432 as user admin_prod")

    monkeypatch.setattr(CursorWrapper, "execute", broken)
    body = Client().get("/readyz").content.decode()
    assert "db.internal" not in body and "admin_prod" not in body
    assert json.loads(body)["checks"]["database"] == {"ok": False, "error": "OSError"}


def test_commands_in_a_checkout_that_ran_the_demo_reuse_its_private_key(tmp_path: Path) -> None:
    made = json.loads(_settings_in_a_fresh_process(tmp_path, DJANGO_DEBUG="1").stdout)
    later = json.loads(_settings_in_a_fresh_process(tmp_path).stdout)  # e.g. `manage.py create_api_token`
    assert later["debug"] is False and later["key"] == made["key"]

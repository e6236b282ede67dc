"""The published API contract is what the server does: schemathesis, every check, every operation.

A live server (pytest-django's, on the test database) answers ``schemathesis run`` exactly as a client
team would run it against ``make run``: the schema from ``/api/schema/``, a staff token, ``--checks all``.
Any failure fails the test, with schemathesis's report (and a curl line per failure) in the output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.contract

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture
def staff_token(transactional_db, predictor) -> str:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from adsite.ads.models import Placement

    for name, size in (("leaderboard", "728x90"), ("sidebar", "300x250"), ("footer", "728x90")):
        Placement.objects.get_or_create(name=name, defaults={"size": size})
    user = get_user_model().objects.create_user(username="contract", is_staff=True)
    return Token.objects.create(user=user).key


def test_every_operation_passes_every_schemathesis_check(live_server, staff_token: str, tmp_path: Path) -> None:
    command = [
        str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{live_server.url}/api/schema/",
        "--checks", "all",
        "--header", f"Authorization: Token {staff_token}",
        "--max-examples", os.environ.get("CONTRACT_MAX_EXAMPLES", "30"),
        "--seed", "22",
        "--workers", "1",
        "--suppress-health-check", "all",
        "--no-color",
        # the run's report (test cases and statuses per operation: docs/reliability.md's fuzzing figures)
        "--report", "json", "--report-dir", str(Path(os.environ.get("CONTRACT_REPORT_DIR", tmp_path / "report")).resolve()),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]

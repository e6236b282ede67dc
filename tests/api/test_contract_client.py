"""A Python client generated from the published schema (openapi-python-client) works against the server.

What a client team does: generate from ``/api/schema/``, authenticate with a bearer token (the
generator's default), call the interests, decisions and events endpoints with its typed models, and
get typed answers back, errors included. A schema that names a field the server does not send, or an
enum value the server never answers with, fails here when the answer is parsed.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.contract

BIN = Path(sys.executable).parent
PACKAGE = "adsite_contract_client"


@pytest.fixture
def service_token(transactional_db, predictor) -> str:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from adsite.ads.catalog import catalog_invalidate
    from adsite.ads.models import Placement

    for name, size in (("leaderboard", "728x90"), ("sidebar", "300x250")):
        Placement.objects.get_or_create(name=name, defaults={"size": size})
    # rows written past the services: the process's catalog (kept a few seconds, maybe from an earlier
    # test's campaigns) is rebuilt from them, as the admin's changes make it
    catalog_invalidate()
    user = get_user_model().objects.create_user(username="client-team")
    return Token.objects.create(user=user).key


@pytest.fixture
def generated(live_server, service_token: str, tmp_path: Path) -> dict[str, ModuleType]:
    """The client package, generated from the live server's schema into ``tmp_path`` and imported."""
    done = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--url", f"{live_server.url}/api/schema/",
         "--meta", "none", "--output-path", PACKAGE],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        names = ["", ".models", ".api.api.user_interests", ".api.api.interests_batch", ".api.api.ads_decide",
                 ".api.tracking.events_create"]
        yield {name.rsplit(".", 1)[-1] or "client": importlib.import_module(PACKAGE + name) for name in names}
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _client(generated: dict[str, ModuleType], live_server: Any, token: str, **kwargs: Any) -> Any:
    return generated["client"].AuthenticatedClient(base_url=live_server.url, token=token, **kwargs)


def test_interests_through_the_generated_client(generated, live_server, service_token: str, roomy_budget: None) -> None:
    models = generated["models"]
    client = _client(generated, live_server, service_token)  # Authorization: Bearer <key>

    answer = generated["user_interests"].sync(client=client, user_id="alice", top=2)
    assert isinstance(answer, models.Interests)
    assert [c.category for c in answer.categories] == ["sports", "travel"]
    assert isinstance(answer.served_by, models.InterestsServedByEnum)

    batch = generated["interests_batch"].sync(
        client=client, body=models.InterestsBatchInput(user_ids=["bob", "alice"], top=1)
    )
    assert isinstance(batch, models.InterestsBatch)
    assert [(r.user_id, [c.category for c in r.interests.categories]) for r in batch.results] == [
        ("bob", ["news"]), ("alice", ["sports"])
    ]

    refused = generated["user_interests"].sync(client=client, user_id="alice", top=500)
    assert isinstance(refused, models.ApiErrors)
    assert "top" in refused.errors.additional_properties

    with_token_prefix = _client(generated, live_server, service_token, prefix="Token")
    assert isinstance(generated["user_interests"].sync(client=with_token_prefix, user_id="bob"), models.Interests)

    stranger = generated["user_interests"].sync_detailed(client=_client(generated, live_server, "nope"), user_id="bob")
    assert stranger.status_code == 401 and isinstance(stranger.parsed, models.ApiErrors)


def test_decisions_through_the_generated_client(generated, live_server, service_token: str) -> None:
    models = generated["models"]
    client = _client(generated, live_server, service_token)

    assert {p.value for p in models.PlacementsEnum} == {"leaderboard", "sidebar"}  # the site's, as data
    decision = generated["ads_decide"].sync(
        client=client,
        body=models.AdDecisionInput(
            user_id="alice", placements=[models.PlacementsEnum.SIDEBAR, models.PlacementsEnum.LEADERBOARD],
            device=models.DeviceEnum.MOBILE,
        ),
    )
    assert isinstance(decision, models.AdDecision)
    assert [p.placement for p in decision.placements] == ["sidebar", "leaderboard"]
    assert isinstance(decision.served_by, models.AdDecisionServedByEnum)
    assert all(p.house and p.creative is None for p in decision.placements)  # no campaign: the house ad

    repeated = models.AdDecisionInput(placements=[models.PlacementsEnum.SIDEBAR] * 2)
    refused = generated["ads_decide"].sync(client=client, body=repeated)
    assert isinstance(refused, models.ApiErrors)
    assert refused.errors.additional_properties == {"placements": "each placement at most once; repeated: sidebar"}


def test_events_through_the_generated_client(generated, live_server, service_token: str) -> None:
    models = generated["models"]
    client = _client(generated, live_server, service_token)
    event = models.Event(
        event_id=uuid.uuid4(), type_=models.EventTypeEnum.PAGE_VIEW, user_id="carol",
        ts=int(time.time() * 1000), url="https://example.org/a/1", categories=["sports"],
    )
    not_an_event = 7

    result = generated["events_create"].sync(client=client, body=models.EventBatch(events=[event, not_an_event]))
    assert isinstance(result, models.CollectResult)
    assert (result.accepted, result.duplicate, result.dropped_for_privacy) == (1, 0, 0)
    assert [(r.index, r.reason) for r in result.rejected] == [(1, models.RejectionReasonEnum.NOT_AN_OBJECT)]

    again = generated["events_create"].sync(client=client, body=models.EventBatch(events=[event]))
    assert (again.accepted, again.duplicate) == (0, 1)

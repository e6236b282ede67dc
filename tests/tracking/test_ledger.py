"""manage.py ledger: received = stored + duplicates + quarantined + buffered (+ deleted), embedded mode."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from tracking_factories import BOT_UA, make_event, post_collect

from tracking.selectors import ledger_accounted

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("embedded")]


def ledger_json() -> dict[str, Any]:
    out = StringIO()
    call_command("ledger", "--json", stdout=out)
    return json.loads(out.getvalue())


def test_ledger_reconciles_after_good_duplicate_bad_and_bot_events(client: Client) -> None:
    repeated = make_event()
    post_collect(client, [make_event(), repeated, repeated, make_event(type="nope"), make_event(ts="soon")])
    post_collect(client, [repeated, make_event()], ua=BOT_UA)
    post_collect(client, body=b"not json")
    post_collect(client, [make_event()], HTTP_SEC_GPC="1")
    ledger = ledger_json()
    assert ledger["received"] == 5 + 2 + 1
    assert ledger["stored"] == 3
    assert ledger["duplicates"] == 2
    assert ledger["quarantined"] == {"invalid_event_type": 1, "invalid_ts": 1, "invalid_json": 1}
    assert ledger["buffered"] == 0
    assert ledger["bots"] == 1
    assert ledger["dropped_for_privacy"] == 1
    assert ledger["received"] == ledger_accounted(ledger)
    assert ledger["unaccounted"] == 0


def test_ledger_still_reconciles_after_a_visitor_is_deleted(client: Client) -> None:
    from tracking.privacy import user_data_delete

    post_collect(client, [make_event(user_id="leaver"), make_event(user_id="leaver", type="x")])
    post_collect(Client(), [make_event()])
    user_data_delete(user_id="leaver")
    ledger = ledger_json()
    assert ledger["stored"] == 1 and ledger["deleted"] == 1 and ledger["deleted_quarantine"] == 1
    assert ledger["unaccounted"] == 0

"""``manage.py ads_report --json``: the invoice numbers, in exactly the documented shape."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from adsite.ads.selectors import invalid_traffic_by_campaign
from adsite.content.services import demo_content_seed

from .conftest import BROWSER_UA, browser

pytestmark = pytest.mark.django_db

REASONS = {"bot", "unknown_serve", "wrong_visitor", "replay", "expired", "rate"}
COUNTERS = {"impressions_served", "impressions_viewable", "impressions_billed", "impressions_invalid",
            "clicks_billed", "clicks_invalid", "spend", "budget"}


def run(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("ads_report", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_the_report_counts_what_is_billed_and_what_was_refused(make_campaign: Any, interests: Any) -> None:
    demo_content_seed(articles_per_category=1, seed=1)
    cpc = make_campaign(advertiser="Clicks Ltd", bid=Decimal("0.40"), total_budget=Decimal("250"))
    reader = browser("reader")
    html = reader.get("/about/").content.decode()
    link = re.search(r'href="(/c/[^"]+)"', html).group(1)
    reader.get(link)  # billed
    reader.get(link)  # replay
    Client(HTTP_USER_AGENT=BROWSER_UA).get(link)  # a script without the cookie
    Client(HTTP_USER_AGENT="curl/8.0").get("/about/")  # a bot's page view
    Client(HTTP_USER_AGENT=BROWSER_UA).get("/c/not-a-token")

    report = run()
    assert set(report) == {"campaigns", "totals", "chosen_on_device", "chosen_on_device_min_audience"}
    assert report["chosen_on_device"] == []  # nothing was chosen on a device
    (row,) = report["campaigns"]
    assert set(row) == {"id", "name"} | COUNTERS
    assert set(report["totals"]) == COUNTERS
    assert (row["id"], row["name"]) == (cpc.id, cpc.name)
    assert (row["impressions_served"], row["impressions_billed"], row["clicks_billed"]) == (1, 0, 1)
    assert row["clicks_invalid"] == {**dict.fromkeys(REASONS, 0), "replay": 1, "wrong_visitor": 1}
    assert (row["spend"], row["budget"]) == ("0.400000", "250.000000")
    totals = report["totals"]
    assert totals["clicks_invalid"]["unknown_serve"] == 1  # names no campaign: in the totals only
    assert totals["impressions_invalid"]["bot"] >= 1
    assert totals["clicks_billed"] == 1 and totals["spend"] == "0.400000"
    # the selector the dashboard reads
    assert invalid_traffic_by_campaign()[cpc.id].clicks["replay"] == 1

    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    assert run("--since", later)["campaigns"][0]["clicks_billed"] == 0
    assert run("--since", "2000-01-01T00:00:00")["campaigns"][0]["clicks_billed"] == 1
    with pytest.raises(CommandError):
        run("--since", "yesterday")

"""The in-process catalog is refreshed in the background: no decision waits for a rebuild."""

from __future__ import annotations

import time

import pytest

from adsite.ads import catalog as catalog_module
from adsite.ads.catalog import catalog_current, catalog_invalidate
from adsite.platform import platform


def _wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.django_db(transaction=True)  # the refresh thread reads what the test committed
def test_a_stale_catalog_is_served_while_a_background_thread_rebuilds_it(settings, make_campaign, monkeypatch):
    first = make_campaign()
    settings.ADS = {**settings.ADS, "CATALOG_SECONDS": 0.2}
    catalog_invalidate()
    old = catalog_current()
    assert [c.id for c in old.campaigns] == [first.id]
    second = make_campaign()  # (invalidates: a change through a service is seen at once)
    rebuilt = catalog_current()
    assert {c.id for c in rebuilt.campaigns} == {first.id, second.id}

    # a change made behind the catalog's back (another process): seen after CATALOG_SECONDS, without
    # the request that notices the staleness building it
    builds: list[str] = []
    real_build = catalog_module.catalog_build

    def counted_build():
        import threading

        builds.append(threading.current_thread().name)
        return real_build()

    monkeypatch.setattr(catalog_module, "catalog_build", counted_build)
    monkeypatch.setattr(platform(), "catalog", rebuilt)  # the new campaign below does not invalidate
    from adsite.ads.models import Campaign

    Campaign.objects.filter(id=second.id).update(name="Renamed elsewhere")
    time.sleep(0.25)
    assert catalog_current() is rebuilt  # stale, answered at once
    assert _wait_for(lambda: catalog_current().campaigns_by_id[second.id].name == "Renamed elsewhere")
    assert builds and all(name == "ads-catalog-refresh" for name in builds)  # never in the request's thread


@pytest.mark.django_db(transaction=True)
def test_a_failed_background_rebuild_keeps_the_previous_catalog(settings, make_campaign, monkeypatch):
    campaign = make_campaign()
    settings.ADS = {**settings.ADS, "CATALOG_SECONDS": 0.05}
    catalog_invalidate()
    current = catalog_current()
    attempts: list[int] = []

    def broken_build():
        attempts.append(1)
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(catalog_module, "catalog_build", broken_build)
    time.sleep(0.1)
    assert catalog_current() is current
    assert _wait_for(lambda: bool(attempts) and not platform().catalog_refreshing)
    assert catalog_current().campaigns_by_id[campaign.id].name == campaign.name  # still deciding

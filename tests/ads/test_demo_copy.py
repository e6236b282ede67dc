"""The demo advertisers' ads fit them: a car maker does not sell laptops."""

from __future__ import annotations

from adsite.ads.services.demo import ADVERTISER_HEADLINES, ADVERTISERS, HEADLINES


def test_each_advertiser_sells_what_it_is() -> None:
    copy = {
        name: [h for c in cats for h in ADVERTISER_HEADLINES.get((name, c), HEADLINES.get(c, ()))]
        for name, cats in ADVERTISERS
    }
    assert not any("Laptop" in h for h in copy["Northwind Motors"])
    assert not any("Laptop" in h for h in copy["Soundwave Audio"])
    assert not any("dog" in h.lower() and "food" in h.lower() for h in copy["Kinfolk Family Club"])

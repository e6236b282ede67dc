"""Edge mode in Debian's Chromium: the visitor's profile stays in the browser, no clickstream leaves it,
the interests come from the edge model scored on the device, and the visitor can erase them."""

from __future__ import annotations

from typing import Any

import pytest

from adsite.content.models import Article
from inference.models.edge import EDGE_FEATURES, EdgeModel, edge_file_write
from tests.browser.test_tracker import _dwell_on, _new_page, _wait_until, article, browser, fast_tracker  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture
def edge_site(settings: Any, tmp_path: Any, article: Article) -> dict[str, list[Article]]:  # noqa: F811
    """Edge mode for every visitor, and an edge model exported under the site's model directory."""
    settings.TRACKING = {**settings.TRACKING, "EDGE_MODE": "all"}
    settings.INFERENCE = {**getattr(settings, "INFERENCE", {}), "MODEL_DIR": str(tmp_path)}
    by_category: dict[str, list[Article]] = {}
    for item in Article.objects.select_related("category").order_by("slug"):
        by_category.setdefault(item.category.slug, []).append(item)
    weights = dict.fromkeys(EDGE_FEATURES, 0.0) | {"count_share": 4.0, "recent20_count": 0.3, "population_share": 1.0}
    popularity = {slug: 1.0 for slug in sorted(by_category)}
    model = EdgeModel(
        weights=[weights[name] for name in EDGE_FEATURES],
        bias=-3.0,
        categories=list(popularity),
        popularity=popularity,
        hyperparameters={"popular_k": 5},
        training={"version": "edge-test"},
    )
    edge_file_write(model, tmp_path / "edge")
    return by_category


def test_edge_mode_sends_no_clickstream_and_scores_the_visitors_interests_on_the_device(
    browser: Any, live_server: Any, edge_site: dict[str, list[Article]]  # noqa: F811
) -> None:
    from tracking.models import Event

    favourite, other = [slug for slug, items in edge_site.items() if len(items) >= 3][:2]
    page = _new_page(browser)
    requests: list[Any] = []
    page.on("request", lambda request: requests.append(request))
    for item in [*edge_site[favourite][:3], edge_site[other][0]]:
        page.goto(f"{live_server.url}/article/{item.slug}/")
        _dwell_on(page, "body", ms=200)
    # a click on a link of the favourite category (through the tracker's API: a real modified click would
    # open a second tab of the site, whose own page view would race this test's reads)
    page.evaluate("([c]) => window.adsiteTracker.track('click', {categories: [c]})", [favourite])
    # four page views and a click, all in the profile (none lost to a page left before its script loaded)
    _wait_until(lambda: (page.evaluate("window.adsiteTracker.edge.profile()") or {}).get("n") == 5, page)
    # the profile's script is requested only once the page has loaded: it never delays the first paint
    started, loaded = page.evaluate(
        """() => [
            performance.getEntriesByType('resource').find((e) => e.name.includes('/inference/edge.js')).startTime,
            performance.getEntriesByType('navigation')[0].loadEventStart,
        ]"""
    )
    assert started >= loaded > 0
    interests = page.evaluate("window.adsiteTracker.edge.interests(3)")
    profile = page.evaluate("window.adsiteTracker.edge.profile()")

    # the profile holds what the visitor read, on the device
    assert profile["c"] == {favourite: 4, other: 1}, profile
    assert interests[0]["category"] == favourite and 0 < interests[0]["probability"] < 1, (interests, profile)
    # nothing of the clickstream reached the server: no /collect, no POST, no event stored
    assert not [r.url for r in requests if "/collect" in r.url or r.method != "GET"]
    assert Event.objects.count() == 0
    # the model file is the same for everybody: fetched without the visitor's cookies
    model_requests = [r for r in requests if r.url.endswith("/edge/model.json")]
    assert model_requests and all("cookie" not in r.all_headers() for r in model_requests)
    assert page.evaluate("window.adsiteTracker.track('conversion', {})") is None

    page.evaluate("window.adsiteTracker.edge.erase()")
    assert page.evaluate("localStorage.getItem('adsite_edge_profile')") is None
    assert page.evaluate("window.adsiteTracker.edge.profile()")["n"] == 0


def test_private_edge_mode_gives_gpc_visitors_a_device_profile_and_others_the_usual_tracker(
    browser: Any, live_server: Any, edge_site: dict[str, list[Article]], settings: Any  # noqa: F811
) -> None:
    settings.TRACKING = {**settings.TRACKING, "EDGE_MODE": "private"}
    item = next(iter(edge_site.values()))[0]
    private = _new_page(browser, gpc=True)
    sent: list[str] = []
    private.on("request", lambda request: sent.append(request.url) if "/collect" in request.url else None)
    private.goto(f"{live_server.url}/article/{item.slug}/")
    _wait_until(lambda: (private.evaluate("window.adsiteTracker.edge.profile()") or {}).get("n") == 1, private)
    assert private.evaluate("window.adsiteTracker.edge.on") is True
    private.wait_for_timeout(1500)  # more than a flush interval
    assert sent == []

    usual = _new_page(browser)
    usual.goto(f"{live_server.url}/article/{item.slug}/")
    assert usual.evaluate("window.adsiteTracker.edge.on") is False
    assert usual.evaluate("localStorage.getItem('adsite_edge_profile')") is None

"""The dashboard in Debian's Chromium (Playwright) against a live server: log in as staff, visit
every page (screenshots in docs/screenshots/dashboard-<page>.png), train now -> progress -> a new
version, activate it -> the interests API serves it; train a second candidate and shadow it -> live
requests are scored by it and the models page shows its agreement; compare the two versions per
category; delete a visitor; pause a campaign on the ads page -> it is no longer selected."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache

from tests.dashboard.conftest import VISITOR, ingest, make_event
from tests.dashboard.test_dashboard_ads import ads_seeded, ads_state  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture
def training_settings(settings: Any, tmp_path: Path, data_sources: Callable[..., None]) -> None:
    from tests.dashboard.test_dashboard_actions import training_categories, training_events

    cache.delete("inference:training:lock")
    data_sources(events=training_events, categories=training_categories)
    settings.INFERENCE = {
        **settings.INFERENCE,
        "MODEL_DIR": str(tmp_path),
        "HYPERPARAMETERS": {"gbdt": {"objective": "binary", "max_rounds": 10}},
        "RELOAD_POLL_SECONDS": 0.5,
    }
    settings.DASHBOARD = {"TRAIN_IN_BACKGROUND": False, "REFRESH_SECONDS": 2}
    # Train in this process also in services mode: the event source above is test-local, which a
    # separate worker would not have. The real worker path is covered by tests/inference/registry.
    settings.CELERY_TASK_ALWAYS_EAGER = True


def _wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError("condition not met in time")


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)


def _login(page: Any, base: str) -> None:
    page.goto(f"{base}/dashboard/")
    assert "/dashboard/login/" in page.url
    page.fill("#id_username", "staffer")
    page.fill("#id_password", "pw-staff-123")
    page.click("#sign-in")
    page.wait_for_url(f"{base}/dashboard/")


def test_staff_day_in_the_dashboard(
    browser, live_server, transactional_db, seeded, staff_user, training_settings, settings
):
    from prometheus_client import REGISTRY

    from adsite.dashboard.models import AuditEntry
    from adsite.dashboard.rollup import metrics_snapshot_take
    from inference.registry.models import ModelVersion
    from tracking.api import user_events_recent

    base = live_server.url
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    _login(page, base)

    # overview: charts drawn from our own static Chart.js, figures refreshed by fetch
    page.wait_for_selector("#chart-rates")
    with page.expect_response(lambda r: "/dashboard/overview.json" in r.url, timeout=15000):
        pass
    assert page.evaluate("typeof Chart") == "function"

    # models: train now -> the run's progress -> a new version in the table
    page.goto(f"{base}/dashboard/models/")
    before = set(ModelVersion.objects.values_list("version", flat=True))
    page.select_option("#train-algorithm", "gbdt")
    page.select_option("#train-activate", "never")
    page.click("#train-now")
    page.wait_for_selector("text=Training started")
    _wait_until(lambda: "succeeded" in page.inner_text("[data-run-text]"))
    new = ModelVersion.objects.exclude(version__in=before).get(algorithm="gbdt")
    page.wait_for_selector(f"button[aria-label='Activate {new.version}']")  # its registry row
    _shot(page, "models")

    # activate the new version -> the interests API serves it (web processes reload on their poll)
    page.click(f"button[aria-label='Activate {new.version}']")
    page.wait_for_selector(f"text={new.version} is now serving.")

    answers: list[dict[str, Any]] = []

    def served_by_new() -> bool:
        answers.append(page.request.get(f"{base}/api/v1/users/{VISITOR}/interests?top=3").json())
        return answers[-1].get("model_version") == new.version

    try:
        _wait_until(served_by_new)
    finally:
        print("last interests answer:", answers[-1:] if answers else None)

    # shadow mode: a second candidate (fewer boosting rounds) shadows every model-served request
    settings.INFERENCE = {
        **settings.INFERENCE,
        "HYPERPARAMETERS": {"gbdt": {"objective": "binary", "max_rounds": 3}},
        # a generous budget: on a loaded CI machine the 5 ms default may leave the answers to the
        # prior (never shadowed); this test is about what the shadow does, not how fast it is
        "BUDGET_MS": 250.0,
    }
    page.goto(f"{base}/dashboard/models/")
    before = set(ModelVersion.objects.values_list("version", flat=True))
    page.select_option("#train-algorithm", "gbdt")
    page.select_option("#train-activate", "never")
    page.click("#train-now")
    page.wait_for_selector("text=Training started")
    _wait_until(lambda: "succeeded" in page.inner_text("[data-run-text]"))
    candidate = ModelVersion.objects.exclude(version__in=before).get(algorithm="gbdt")
    page.goto(f"{base}/dashboard/models/#shadow")
    page.select_option("#shadow-version", candidate.version)
    page.fill("#shadow-percent", "100")
    page.fill("#shadow-topk", "3")
    page.click("#shadow-start")
    page.wait_for_selector(f"text={candidate.version} now shadows 100% of model-served requests")

    # a visitor with history in the categories the models were trained on, so the serving model
    # answers with categories (the shadow is compared with model answers only)
    ingest(
        [make_event(user_id="visitor-shadow", categories=[f"c{i % 3}"], item_id=f"s{i}") for i in range(9)]
    )

    answers: list[dict[str, Any]] = []

    def shadow_scored() -> bool:
        answer = page.request.get(f"{base}/api/v1/users/visitor-shadow/interests?top=3").json()
        answers.append(answer)
        assert answer["model_version"] != candidate.version  # the shadow never serves
        labels = {"version": candidate.version, "compared_with": "gbdt"}
        return (REGISTRY.get_sample_value("inference_shadow_agreement_count", labels) or 0) >= 10

    try:
        _wait_until(shadow_scored, timeout_s=90)
    finally:  # on a failure, say what the server answered and what the shadow did
        print("last interests answers:", answers[-3:])
        print("shadow series:", [
            (s.name, s.labels, s.value)
            for metric in REGISTRY.collect() if metric.name.startswith("inference_shadow")
            for s in metric.samples if not s.name.endswith(("_bucket", "_created"))
        ])
    metrics_snapshot_take()  # the rollup the page reads (the beat's job in services mode)
    page.goto(f"{base}/dashboard/models/?window=hour")  # a new document, not a same-page #fragment
    row = page.wait_for_selector(f"#shadow-results tr[data-shadow-version='{candidate.version}']")
    assert row.query_selector("[data-agreement]").inner_text() not in ("", "–")
    _shot(page, "models-shadow")
    assert AuditEntry.objects.filter(action="model.shadow", target=candidate.version, ok=True).exists()

    # compare the serving version with the candidate: metrics and per-category scores as charts
    page.goto(f"{base}/dashboard/models/compare?a={new.version}&b={candidate.version}")
    page.wait_for_selector("#chart-compare")
    page.wait_for_selector("#chart-per-category")
    assert page.locator("#per-category tbody tr").count() > 0
    _shot(page, "compare")

    # data quality before the deletion below removes the visitor's quarantined input too
    page.goto(f"{base}/dashboard/quality/")
    page.wait_for_selector("#chart-events")
    _shot(page, "quality")

    # visitors: profile, prediction, events; then delete (confirmed)
    page.goto(f"{base}/dashboard/visitors/")
    page.fill("#id_user_id", VISITOR)
    page.keyboard.press("Enter")
    page.wait_for_selector("#chart-profile")
    _shot(page, "visitors")
    page.click("#delete-visitor")
    page.fill("#confirm", VISITOR)
    _shot(page, "visitor-delete")
    page.click("button.danger")
    page.wait_for_selector("text=Deleted")
    assert user_events_recent(user_id=VISITOR) == []

    page.goto(f"{base}/dashboard/audit/")
    for action in ("model.train", "model.activate", "model.shadow", "visitor.delete"):
        page.wait_for_selector(f"text={action}")
    _shot(page, "audit")

    # the overview after the day's traffic: true HTTP requests per second, busiest routes
    metrics_snapshot_take()
    page.goto(f"{base}/dashboard/")
    page.wait_for_selector("table[data-table='requests_by_route'] td >> text=dashboard:models")
    assert page.inner_text("[data-k='requests_per_s']") not in ("", "–")
    _shot(page, "overview")


@pytest.mark.usefixtures("ads_seeded")
def test_pause_a_campaign_from_the_ads_page(browser, live_server, transactional_db, staff_user):
    """Ads: the page renders the seeded delivery; pausing a campaign there stops ``ads_select`` from
    choosing it; the campaign page shows its creatives in their sandboxed previews."""
    from adsite.ads.models import Campaign, Creative
    from adsite.dashboard.models import AuditEntry
    from tests.dashboard.test_dashboard_ads import chosen_campaigns, sponsorship_campaign

    target = sponsorship_campaign()
    assert chosen_campaigns() == {target.id}
    base = live_server.url
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    _login(page, base)

    page.goto(f"{base}/dashboard/ads/")
    page.wait_for_selector("#chart-ads-delivery")
    assert page.evaluate("typeof Chart") == "function"
    _shot(page, "ads")
    page.click(f"tr[data-campaign-id='{target.id}'] button[data-action='pause-campaign']")
    page.wait_for_selector("text=paused: it is no longer chosen")
    assert page.is_visible(f"tr[data-campaign-id='{target.id}'] button[data-action='resume-campaign']")
    assert Campaign.objects.get(id=target.id).status == "paused"
    assert target.id not in chosen_campaigns()
    assert AuditEntry.objects.filter(action="campaign.pause", actor_name="staffer").exists()

    # the busiest campaign with an HTML creative: delivery chart, image and HTML previews
    from adsite.ads.selectors import campaign_delivery_list

    with_html = [c for c in campaign_delivery_list() if any(cr.kind == "html" for cr in c.creatives)]
    campaign = max(with_html, key=lambda c: c.served)
    html_creative = Creative.objects.get(campaign_id=campaign.id, kind="html")
    page.goto(f"{base}/dashboard/ads/campaigns/{campaign.id}/")
    page.wait_for_selector("#chart-ads-delivery")
    preview = f"tr[data-creative-id='{html_creative.id}'] iframe.preview"
    page.locator(preview).scroll_into_view_if_needed()
    page.frame_locator(preview).locator(".ad-slot__frame").wait_for(state="attached")
    page.wait_for_timeout(500)  # let the nested sandboxed frames paint before the screenshot
    _shot(page, "ads-campaign")
    assert "hijacked" not in page.title()  # the creative's script could not reach the dashboard


@pytest.mark.usefixtures("ads_seeded")
def test_models_page_polls_training_and_no_page_scrolls_sideways_on_a_phone(
    browser, live_server, transactional_db, seeded, staff_user
):
    """The live training box is the one element with id ``training`` (a duplicate id once left
    dashboard.js reading the section instead, so "Train now" progress never refreshed); at 390 px
    wide tables scroll inside themselves rather than making the whole page scroll sideways; and the
    pages log no console errors."""
    base = live_server.url
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    _login(page, base)
    with page.expect_response(lambda r: "/dashboard/models/training.json" in r.url, timeout=15000):
        page.goto(f"{base}/dashboard/models/")
    assert page.locator("[id='training']").count() == 1

    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{m.text} ({m.location.get('url')})") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/dashboard/", "/dashboard/models/", "/dashboard/ads/", "/dashboard/quality/", "/dashboard/audit/"):
        page.goto(f"{base}{path}")
        page.wait_for_load_state("networkidle")
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"{path} scrolls sideways at 390 px: {widths}"
    assert errors == []  # no script errors, no failed loads

"""The site's layout fixes, measured in Debian's Chromium: an in-article image ad shows its whole
artwork (not cropped), an HTML ad sits in the middle of a slot wider than itself, and the drop cap of
a one-line first paragraph does not run into the next paragraph. The creatives are rendered by the
site's own slot markup and stylesheet (the dashboard's preview, as the site renders them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.test_dashboard_ads import ads_seeded, ads_state  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _close_connections() -> None:
    # the ORM calls above ran in Playwright's context; close their connections in it, or a later
    # test's request (tests/ops/test_rsgi.py) finds one open and pytest-django refuses the close
    from django.db import connections

    connections.close_all()


def _login(page: Any, base: str) -> None:
    page.goto(f"{base}/dashboard/login/")
    page.fill("#id_username", "staffer")
    page.fill("#id_password", "pw-staff-123")
    page.click("#sign-in")
    page.wait_for_url(f"{base}/dashboard/")


@pytest.mark.usefixtures("ads_seeded")
def test_in_article_ads_are_whole_and_centred(browser, live_server, transactional_db, staff_user):
    from adsite.ads.models import Creative

    base = live_server.url
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    _login(page, base)
    image = Creative.objects.filter(kind="image").exclude(image="").first()
    page.goto(f"{base}/dashboard/ads/creatives/{image.id}/preview?placement=in_article")
    img = page.wait_for_selector(".ad-slot__image")
    page.wait_for_function("document.querySelector('.ad-slot__image').complete")
    fit, box_ratio, natural_ratio = page.evaluate(
        "(() => { const i = document.querySelector('.ad-slot__image');"
        " return [getComputedStyle(i).objectFit, i.clientWidth / i.clientHeight, i.naturalWidth / i.naturalHeight]; })()"
    )
    assert fit != "cover" and box_ratio == pytest.approx(natural_ratio, rel=0.03), (fit, box_ratio, natural_ratio)
    assert img.bounding_box()["width"] > 0

    html = Creative.objects.filter(kind="html").first()
    page.goto(f"{base}/dashboard/ads/creatives/{html.id}/preview?placement=in_article")
    page.wait_for_selector(".ad-slot__frame")
    left, right = page.evaluate(
        "(() => { const f = document.querySelector('.ad-slot__frame').getBoundingClientRect();"
        " const s = document.querySelector('.ad-slot'); const r = s.getBoundingClientRect(); const cs = getComputedStyle(s);"
        " return [f.left - r.left - parseFloat(cs.borderLeftWidth) - parseFloat(cs.paddingLeft),"
        " r.right - f.right - parseFloat(cs.borderRightWidth) - parseFloat(cs.paddingRight)]; })()"
    )
    assert left > 20 and left == pytest.approx(right, abs=2), (left, right)
    page.close()
    _close_connections()


def test_drop_cap_of_a_one_line_paragraph_keeps_clear_of_the_next(browser, live_server, transactional_db):
    from django.utils import timezone

    from adsite.content.models import Article, Category

    category = Category.objects.create(slug="travel", name="Travel")
    Article.objects.create(
        slug="short-opening", title="A short opening", category=category, summary="One line first.",
        body="One short line.\n\n" + "A second paragraph that runs on for a while. " * 8 + "\n\nA third one.",
        author="A. Writer", published_at=timezone.now(),
    )
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{live_server.url}/article/short-opening/")
    top, cap, second = page.evaluate(
        "(() => { const ps = document.querySelectorAll('.story__body > p');"
        " const letter = getComputedStyle(ps[0], '::first-letter');"
        " return [ps[0].getBoundingClientRect().top,"
        " parseFloat(letter.lineHeight) + parseFloat(letter.paddingTop),"
        " ps[1].getBoundingClientRect().top]; })()"
    )
    assert second >= top + cap, (top, cap, second)  # the next paragraph starts below the drop cap
    page.screenshot(path=str(SCREENSHOTS / "site-article-drop-cap.png"))
    page.close()
    _close_connections()

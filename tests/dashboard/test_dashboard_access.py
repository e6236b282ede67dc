"""Only signed-in staff reach the dashboard: anonymous visitors are sent to log in, others get 403,
on every page and every POST action."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PAGES = [
    "/dashboard/",
    "/dashboard/overview.json",
    "/dashboard/models/",
    "/dashboard/models/compare?a=x&b=y",
    "/dashboard/models/training.json",
    "/dashboard/visitors/?user_id=someone",
    "/dashboard/visitors/someone/delete",
    "/dashboard/quality/",
    "/dashboard/audit/",
]
ACTIONS = [
    "/dashboard/models/train",
    "/dashboard/models/gbdt-x/activate",
    "/dashboard/models/gbdt-x/retire",
    "/dashboard/models/gbdt/rollback",
    "/dashboard/models/shadow",
    "/dashboard/models/shadow/stop",
    "/dashboard/visitors/someone/delete",
    "/dashboard/quality/replay",
]


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_is_sent_to_login(url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/dashboard/login/")


@pytest.mark.parametrize("url", ACTIONS)
def test_anonymous_post_is_sent_to_login_and_changes_nothing(url):
    from adsite.dashboard.models import AuditEntry

    response = Client().post(
        url, {"confirm": "someone", "ids": ["1"], "algorithm": "all", "activate": "never"}
    )
    assert response.status_code == 302 and response["Location"].startswith("/dashboard/login/")
    assert AuditEntry.objects.count() == 0


@pytest.mark.parametrize("url", PAGES)
def test_non_staff_get_403(user_client, url):
    assert user_client.get(url).status_code == 403


@pytest.mark.parametrize("url", ACTIONS)
def test_non_staff_post_get_403_and_changes_nothing(user_client, url):
    from adsite.dashboard.models import AuditEntry
    from inference.registry.models import TrainingRun

    response = user_client.post(
        url, {"confirm": "someone", "ids": ["1"], "algorithm": "all", "activate": "never"}
    )
    assert response.status_code == 403
    assert AuditEntry.objects.count() == 0
    assert TrainingRun.objects.count() == 0


@pytest.mark.parametrize("url", ACTIONS)
def test_staff_post_without_csrf_token_is_refused(staff_user, url):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    assert client.post(url, {"confirm": "someone"}).status_code == 403


def test_actions_refuse_get(staff_client):
    for url in ACTIONS:
        if url.endswith("/delete"):
            continue  # GET there is the confirmation page
        assert staff_client.get(url).status_code == 405


def test_sign_in_page_is_the_dashboards_own_and_refuses_non_staff(django_user_model):
    django_user_model.objects.create_user("reader", password="pw-user-123")
    page = Client().get("/dashboard/login/?next=/dashboard/ads/")
    assert page.status_code == 200 and b"Sign in" in page.content and b"Django administration" not in page.content
    refused = Client().post("/dashboard/login/", {"username": "reader", "password": "pw-user-123"})
    assert refused.status_code == 200 and b"not a staff account" in refused.content


def test_staff_sign_in_goes_where_it_was_asked_and_log_out_ends_the_session(staff_user):
    client = Client()
    signed_in = client.post(
        "/dashboard/login/", {"username": "staffer", "password": "pw-staff-123", "next": "/dashboard/ads/"}
    )
    assert signed_in.status_code == 302 and signed_in["Location"] == "/dashboard/ads/"
    assert b'id="log-out"' in client.get("/dashboard/audit/").content
    out = client.post("/dashboard/logout/")
    assert out.status_code == 302 and out["Location"] == "/dashboard/login/"
    assert client.get("/dashboard/").status_code == 302

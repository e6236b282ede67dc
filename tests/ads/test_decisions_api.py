"""POST /api/v1/ads/decisions refuses what it cannot honour, with the API's one error shape.

Unknown or repeated placements, values of the wrong JSON type and unknown fields are a 400
``{"errors": {field: message}}`` before any ad is chosen (no impression is counted); other errors keep
their status with the same shape, and under ``/api/`` even Django's own 404 is JSON.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db
URL = "/api/v1/ads/decisions"


@pytest.fixture
def api(make_campaign: Any, interests: Any) -> Client:
    make_campaign(advertiser="Trailhead", interests={"travel": 1.0}, creatives=1)
    user = get_user_model().objects.create_user("partner")
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")


def _post(api: Client, body: Any) -> Any:
    return api.post(URL, body if isinstance(body, str) else json.dumps(body), content_type="application/json")



def test_a_known_placement_gets_an_ad(api: Client) -> None:
    response = _post(api, {"user_id": "demo-00002", "placements": ["sidebar"]})
    assert response.status_code == 200, response.content
    assert response.json()["placements"][0]["placement"] == "sidebar"


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["totally-made-up"], "unknown placement: totally-made-up"),
        (["sidebar", "nope", "footer", "neither"], "unknown placement: nope, neither"),
        (["sidebar", "sidebar"], "each placement at most once; repeated: sidebar"),
    ],
)
def test_unknown_or_repeated_placements_are_a_400_and_no_ad_is_chosen(
    api: Client, interests: Any, names: list[str], message: str
) -> None:  # not "placements": that is the fixture that creates the site's placements
    response = _post(api, {"user_id": "demo-00002", "placements": names})
    assert response.status_code == 400
    assert response.json() == {"errors": {"placements": message}}
    assert interests.calls == 0  # ads_select never ran: no creative, no signed URLs, no impression


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": 123, "placements": ["sidebar"]}, "user_id"),
        ({"placements": ["sidebar"], "explain": "yes"}, "explain"),
        ({"placements": ["sidebar"], "explain": 1}, "explain"),
        ({"placements": ["sidebar"], "bogus": 1}, "bogus"),
        ({"placements": "sidebar"}, "placements"),
        ({"placements": [7]}, "placements[0]"),
        ({"placements": ["sidebar", " footer"]}, "placements[1]"),
        ({"placements": ["sidebar\n"]}, "placements[0]"),
        ({"placements": ["sidebar"], "categories": ["travel", True]}, "categories[1]"),
        ({"placements": ["sidebar"], "device": "phone"}, "device"),
        ({"user_id": "demo-00002"}, "placements"),
    ],
)
def test_wrong_types_and_unknown_fields_are_a_400_naming_the_field(
    api: Client, interests: Any, body: dict[str, Any], field: str
) -> None:
    response = _post(api, body)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == [field] and isinstance(errors[field], str) and errors[field]
    assert interests.calls == 0


@pytest.mark.parametrize("body", ["{not json", "[]", '"sidebar"', "null"])
def test_a_body_that_is_not_a_json_object_is_a_400_about_the_body(api: Client, body: str) -> None:
    response = _post(api, body)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["body"]


def test_form_encoding_is_refused_json_types_being_exact(api: Client) -> None:
    response = api.post(URL, {"placements": "sidebar"})
    assert response.status_code == 415
    assert list(response.json()["errors"]) == ["detail"]


def test_auth_and_method_errors_keep_their_status_in_the_same_shape(api: Client, make_campaign: Any) -> None:
    anonymous = Client().post(URL, json.dumps({"placements": ["sidebar"]}), content_type="application/json")
    assert anonymous.status_code == 401
    assert isinstance(anonymous.json()["errors"]["detail"], str)
    assert anonymous.has_header("WWW-Authenticate")
    wrong_method = api.get(URL)
    assert wrong_method.status_code == 405
    assert set(wrong_method.json()["errors"]) == {"detail"} and "POST" in wrong_method["Allow"]


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/users/a%2Fb/interests", "/api/v2/ads/decisions"])
def test_an_unknown_api_path_is_a_json_404(api: Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response.json() == {"errors": {"path": "no such API endpoint"}}


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_a_write_to_an_api_path_missing_its_slash_is_a_json_404_naming_the_path(
    api: Client, settings: Any, debug: bool, method: str
) -> None:
    """Django's APPEND_SLASH cannot redirect a POST: a 500 in DEBUG, an HTML 301 (the body lost) otherwise."""
    settings.DEBUG = debug
    client = Client(HTTP_AUTHORIZATION=api.defaults["HTTP_AUTHORIZATION"], raise_request_exception=False)
    response = getattr(client, method)("/api/v1/models", "{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json() == {"errors": {"path": "no such API endpoint (did you mean /api/v1/models/?)"}}
    assert client.get("/api/v1/models").status_code == 301  # a GET is still redirected


def test_the_sites_own_404_stays_an_html_page(client: Client, db: None) -> None:
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")

"""From a decision to what a page or an API client shows: slot ads, signed click and impression URLs.

``placements_provide`` is the content app's placement provider (answering ``placements_requested``): one
``ads_select`` per page for all its slots (none for an edge-mode visitor: their browser chooses,
``adsite.ads.edge``). Visitors who refused tracking (DNT, GPC, no consent) get
ads chosen from the page's own categories, with no visitor id: nothing about them is counted per person.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urljoin

from django.http import HttpRequest
from django.urls import get_script_prefix, reverse

from adsite.ads.decisions import Choice, Decision, DecisionContext, PlacementRequest, ads_select
from adsite.ads.integrity import BOT, IMPRESSION, invalid_record, visitor_from_request
from adsite.ads.tokens import API, CLICK_SALT, PAGE, VIEW_SALT, AdToken, serve_id_make, tokens_make
from adsite.content.placements import SlotAd
from adsite.platform import platform
from tracking import api as tracking_api


def choice_token(*, choice: Choice, user_id: str, binding: str = "", origin: str = PAGE) -> AdToken | None:
    """The served impression's token: its signed serve id, creative, campaign and visitor (``user_id``,
    or for a visitor the site does not personalise, ``binding``)."""
    if choice.creative is None or choice.campaign is None:
        return None
    return AdToken(
        serve_id=serve_id_make(nonce=choice.serve_id, creative_id=choice.creative.id, user_id=user_id),
        creative_id=choice.creative.id, campaign_id=choice.campaign.id,
        placement=choice.placement, user_id=user_id, binding="" if user_id else binding, origin=origin,
        repeat=choice.repeat,
    )


_TOKEN_MARK = "TOKEN"


@functools.lru_cache(maxsize=64)
def _url_around_token(name: str, script_prefix: str) -> tuple[str, str]:
    """What comes before and after the token in ``name``'s URL under ``script_prefix`` (reversed once)."""
    head, _, tail = reverse(name, kwargs={"token": _TOKEN_MARK}).partition(_TOKEN_MARK)
    return head, tail


def _token_url(name: str, token: str) -> str:
    """``reverse(name, kwargs={"token": token})``, the pattern reversed once per process and prefix:
    signed tokens hold only URL-safe characters (base64url, ``:``), which ``reverse`` leaves as they are."""
    head, tail = _url_around_token(name, get_script_prefix())
    return head + token + tail


def choice_urls(*, choice: Choice, user_id: str, binding: str = "", origin: str = PAGE) -> tuple[str, str]:
    """(click URL, impression URL), site-relative; empty for the built-in house ad."""
    return token_urls(choice_token(choice=choice, user_id=user_id, binding=binding, origin=origin))


def token_urls(token: AdToken | None) -> tuple[str, str]:
    """(click URL, impression URL) of one served impression's token; empty for none."""
    if token is None:
        return "", ""
    click, view = tokens_make(token=token, salts=(CLICK_SALT, VIEW_SALT))
    return _token_url("ads-click", click), _token_url("ads-view", view)


def request_context(*, request: HttpRequest, categories: Sequence[str] = (), explain: bool = False) -> tuple[str, DecisionContext]:
    """(visitor id or "", decision context) of a page request."""
    personalized = tracking_api.tracking_allowed(request)
    user_id = tracking_api.visitor_id(request) if personalized else ""
    device = tracking_api.user_agent_device(request.META.get("HTTP_USER_AGENT", "") or "")
    owner = platform()  # the composition root holds the page policy (the site's, or the simulation's)
    return user_id, DecisionContext(
        device=device, categories=tuple(categories), personalized=personalized, explain=explain,
        policy=owner.policy, rng=owner.page_rng,
    )


def slot_ad(*, choice: Choice, user_id: str, binding: str = "") -> SlotAd | None:
    token = choice_token(choice=choice, user_id=user_id, binding=binding)
    if token is None or choice.creative is None or choice.campaign is None:
        return None
    click_url, impression_url = token_urls(token)
    creative = choice.creative
    return SlotAd(
        placement=choice.placement,
        creative_id=str(creative.id),
        campaign_id=str(choice.campaign.id),
        headline=creative.headline,
        body=creative.body,
        cta=creative.cta,
        href=click_url,
        sponsor=choice.campaign.advertiser,
        impression_url=impression_url,
        serve_id=token.serve_id,
        house=choice.house,
        image_url=creative.image_url,
        html=creative.html if creative.kind == "html" else "",
        reason=choice.reason,
    )


def placements_provide(
    *, request: HttpRequest, placements: Sequence[str], categories: Sequence[str] = ()
) -> Mapping[str, SlotAd | None]:
    """The content app's provider: one decision for the page's slots (``None``: built-in house ad).

    A bot (``tracking``'s user-agent check) gets the built-in house ad everywhere: no decision, nothing
    reserved or billed; its page's slots are counted as invalid impressions (``bot``).
    """
    visitor = visitor_from_request(request)
    if visitor.is_bot:
        invalid_record(kind=IMPRESSION, reason=BOT, campaign_id=None, n=len(placements))
        return {name: None for name in placements}
    if tracking_api.edge_mode_for(request):
        # the visitor's browser chooses among offers made from context (``adsite.ads.edge``): the page
        # holds house ads until it has, and nothing is reserved for this request
        return {name: None for name in placements}
    user_id, context = request_context(request=request, categories=categories)
    decision: Decision = ads_select(
        user_id=user_id, placements=[PlacementRequest(name) for name in placements], context=context
    )
    binding = "" if decision.user_id else visitor.binding()
    return {
        choice.placement: slot_ad(choice=choice, user_id=decision.user_id, binding=binding)
        for choice in decision.choices
    }


def url_absolute(location: str, *, origin: str, page: str) -> str:
    """``HttpRequest.build_absolute_uri(location)`` for the links a decision holds, for a request to ``page``
    (its absolute URL) on ``origin`` (scheme and host): a site-relative path is joined without parsing."""
    if location.startswith("/") and not location.startswith("//"):
        return origin + location
    return urljoin(page, location) if location else ""


def api_decision(values: Mapping[str, Any], *, absolute: Callable[[str], str]) -> dict[str, Any]:
    """``POST /api/v1/ads/decisions``' answer for validated ``values`` (``decision_input``): the decision and
    each placement's creative with its signed links, made absolute by ``absolute``. The view and the server's
    hot route (``adsite.ops.hot_routes``) both answer with it."""
    decision = ads_select(
        user_id=values["user_id"],
        placements=[PlacementRequest(name) for name in values["placements"]],
        context=DecisionContext(
            device=values["device"], categories=tuple(values["categories"]),
            personalized=bool(values["user_id"]), explain=values["explain"],
        ),
    )
    placements = []
    for choice in decision.choices:
        click_url, impression_url = choice_urls(choice=choice, user_id=decision.user_id, origin=API)
        creative = choice.creative
        placements.append(
            {
                "placement": choice.placement,
                "house": choice.house,
                "creative": None if creative is None or choice.campaign is None else {
                    "id": creative.id, "campaign_id": creative.campaign_id, "advertiser": choice.campaign.advertiser,
                    "kind": creative.kind, "size": creative.size, "headline": creative.headline,
                    "body": creative.body, "cta": creative.cta,
                    "image_url": absolute(creative.image_url),
                    "html": creative.html if creative.kind == "html" else "",
                },
                "click_url": absolute(click_url),
                "impression_url": absolute(impression_url),
                "explanation": choice.reason,
            }
        )
    body: dict[str, Any] = {
        "decision_id": decision.decision_id,
        "user_id": decision.user_id,
        "served_by": decision.interests_served_by,
        "fallback_reason": decision.fallback_reason,
        "elapsed_ms": round(decision.elapsed_ms, 3),
        "placements": placements,
        "filtered": decision.filtered,
    }
    if values["explain"]:
        body["explanation"] = decision.explanation
    return body

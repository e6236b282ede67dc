"""Invalid traffic: what is never billed, and the record of it.

The rules (the IAB/MRC idea of general invalid traffic, filtered before billing):

- **bot**: a known crawler, a declared bot or an HTTP library (``tracking``'s user-agent check) gets the
  built-in house ad on every slot, reserves nothing, and its clicks and viewable impressions are refused;
- **unknown_serve**: a click or impression that names nothing the server issued (a forged or altered
  token, an ``ad_impression`` event without a valid ``ad.serve_id``, a serve id for another creative);
- **wrong_visitor**: a click or impression from someone else than the visitor it was served to (the
  identity cookie; without one, the truncated address and user agent the decision saw);
- **replay**: the same served impression clicked or viewed a second time;
- **expired**: a link older than ``ADS["CLICK_MAX_AGE_S"]``;
- **rate**: refused by the anonymous endpoints' rate limits (``tracking.api.rate_limited``).

Every refusal is counted in the ledger's hourly report counters under its campaign (campaign 0 when it
names none) as ``ivi.<reason>`` (impressions) or ``ivc.<reason>`` (clicks), never billed, and refused
clicks with a genuine token are also kept as ``AdClick`` rows with the reason as their outcome.
``adsite.ads.selectors.invalid_traffic_by_campaign`` and ``manage.py ads_report`` read them back.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.http import HttpRequest

from adsite.ads.accounting import LedgerUnavailable, ledger
from adsite.ads.tokens import API, AdToken, binding_matches, visitor_binding
from tracking import api as tracking_api

logger = logging.getLogger(__name__)

BOT = "bot"
UNKNOWN_SERVE = "unknown_serve"
WRONG_VISITOR = "wrong_visitor"
REPLAY = "replay"
EXPIRED = "expired"
RATE = "rate"
REASONS = (BOT, UNKNOWN_SERVE, WRONG_VISITOR, REPLAY, EXPIRED, RATE)

IMPRESSION = "ivi"
CLICK = "ivc"


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who is asking, as far as ad integrity needs to know (never stored as such)."""

    cookie_id: str  # the identity cookie's id, "" without one
    ip_truncated: str
    user_agent: str
    is_bot: bool

    def binding(self) -> str:
        return visitor_binding(ip_truncated=self.ip_truncated, user_agent=self.user_agent)


def visitor_from_request(request: HttpRequest) -> Visitor:
    user_agent = request.META.get("HTTP_USER_AGENT", "") or ""
    return Visitor(
        cookie_id=tracking_api.visitor_id_from_cookie(request),
        ip_truncated=tracking_api.client_ip_truncated(request),
        user_agent=user_agent[:512],
        is_bot=tracking_api.user_agent_is_bot(user_agent[:512]),
    )


def served_to(token: AdToken, visitor: Visitor) -> bool:
    """Whether ``visitor`` is the one ``token`` was served to.

    A page's link names the visitor's cookie id (the cookie must carry the same id) or, for a visitor the
    site does not personalise, a binding of their truncated address and user agent. An API client's link
    names the visitor id the (authenticated) client gave: a click carrying our identity cookie must
    carry that id; one without our cookie is the client's own visitor, vouched for by the client.
    """
    if token.origin == API:
        return not visitor.cookie_id or not token.user_id or visitor.cookie_id == token.user_id
    if token.user_id:
        return visitor.cookie_id == token.user_id
    return binding_matches(token.binding, ip_truncated=visitor.ip_truncated, user_agent=visitor.user_agent)


def invalid_record(*, kind: str, reason: str, campaign_id: int | None, n: int = 1, now: float | None = None) -> None:
    """Count ``n`` refused impressions (``kind="ivi"``) or clicks (``"ivc"``) for a reason; never raises."""
    if reason not in REASONS or n <= 0:
        return
    try:
        ledger().report_add(counts={f"{campaign_id or 0}:{kind}.{reason}": n}, now=time.time() if now is None else now)
    except LedgerUnavailable:
        logger.warning("ads.invalid_not_counted ledger unavailable", extra={"reason": reason})
    logger.debug("ads.invalid_traffic", extra={"kind": kind, "reason": reason, "campaign_id": campaign_id})

"""Reads behind the visitors page: one visitor's events, interests and ad decisions (through
``tracking.api``, ``inference.api`` and the ads selectors).
"""

from __future__ import annotations

from typing import Any


def visitor_get(*, user_id: str, events: int = 50) -> dict[str, Any]:
    """Interest profile (feature store), predicted interests (what serving answers now), recent events."""
    from inference import api as inference_api
    from tracking import api as tracking_api

    profile_error = ""
    try:
        profile = inference_api.user_interest_profile(user_id)
    except Exception as exc:  # the store being down must not take the page with it
        profile, profile_error = None, f"{type(exc).__name__}: {exc}"
    interests = inference_api.predict_interests(user_id, top=10)
    recent = tracking_api.user_events_recent(user_id=user_id, limit=events)
    rows: list[dict[str, Any]] = []
    chart: dict[str, Any] = {"labels": [], "datasets": []}
    if profile is not None:
        counts = dict(profile.counts)
        shares = {label: dict(values) for label, values in profile.decayed_share.items()}
        top = [c for c, _ in (profile.decayed_share.get(profile.half_lives[-1]) or profile.counts)][:15]
        top += [c for c, _ in profile.counts if c not in top][: max(0, 15 - len(top))]
        rows = [
            {
                "category": c,
                "shares": [shares[label].get(c, 0.0) for label in profile.half_lives],
                "count": counts.get(c, 0),
            }
            for c in top
        ]
        chart = {
            "labels": top,
            "datasets": [
                {
                    "label": f"share, half-life {label}",
                    "data": [round(shares[label].get(c, 0.0), 4) for c in top],
                }
                for label in profile.half_lives
            ],
        }
    interests_chart = {
        "labels": [c for c, _ in interests.scores],
        "datasets": [
            {
                # "prior prior" read oddly: the version only when it says more than the model's name
                "label": interests.served_by
                if interests.model_version in ("", interests.served_by)
                else f"{interests.served_by} {interests.model_version}",
                "data": [round(v, 4) for _, v in interests.scores],
            }
        ],
        "options": {"indexAxis": "y"},
    }
    return {
        "profile_rows": rows,
        "profile_chart": chart,
        "interests_chart": interests_chart,
        "user_id": user_id,
        "profile": profile,
        "profile_error": profile_error,
        "interests": interests,
        "events": recent,
        "decisions": visitor_decisions(user_id=user_id),
    }


def visitor_decisions(*, user_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The visitor's kept ad decisions (ads keeps a sample), one row per filled placement, with the
    reason given, how the interests were answered, what was filtered and the top candidates."""
    from adsite.ads import selectors as ads_selectors

    rows: list[dict[str, Any]] = []
    for kept in ads_selectors.decision_explanations_recent(user_id=user_id, limit=limit):
        explanation = kept["explanation"] or {}
        candidates = explanation.get("candidates") or []
        advertisers = {c.get("creative_id"): c.get("advertiser", "") for c in candidates}
        filtered: dict[str, int] = {}
        for item in explanation.get("filtered") or []:
            filtered[item.get("reason", "")] = filtered.get(item.get("reason", ""), 0) + 1
        interests = explanation.get("interests") or {}
        for chosen in explanation.get("chosen") or []:
            rows.append(
                {
                    "at": kept["created_at"],
                    "decision_id": kept["decision_id"],
                    "placement": chosen.get("placement", ""),
                    "creative": chosen.get("creative_id") or "house ad",
                    "advertiser": advertisers.get(chosen.get("creative_id"), ""),
                    "explanation": chosen.get("reason", ""),
                    "served_by": interests.get("served_by", ""),
                    "fallback_reason": interests.get("fallback_reason") or "",
                    "filtered": sorted(filtered.items()),
                    "candidates": candidates[:5],
                }
            )
    return rows

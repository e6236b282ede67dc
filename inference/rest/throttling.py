"""Rate limits of the inference API, per authenticated client (rates in REST_FRAMEWORK settings)."""

from __future__ import annotations

from rest_framework.throttling import UserRateThrottle


class InterestsRateThrottle(UserRateThrottle):
    scope = "interests"


class InterestsBatchRateThrottle(UserRateThrottle):
    scope = "interests_batch"

"""Background latency probes: the way a model skipped for its p99 comes back.

A model skipped for its recent p99 records nothing from requests, so the poll thread times one call
(on empty features) of each loaded model that no request called during the last probe period: a model
that is fast again comes back soon, and one that stays slow stays out without any request paying for it.
A shadow skipped for its p99 recovers the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from inference.serving.slots import FeatureAccess, LoadedModel, validated_scores

logger = logging.getLogger(__name__)

__all__ = ["probe_idle"]


def probe_idle(
    slots: Iterable[tuple[str, LoadedModel]],
    *,
    features: FeatureAccess,
    idle_for_s: float,
    clock: Callable[[], float],
    timer: Callable[[], float],
) -> list[str]:
    """Time one call of each loaded, closed-breaker model not called in the last ``idle_for_s``
    seconds (by ``timer``); record it in its latency window. Returns the names probed."""
    probed = []
    idle_since = timer() - max(idle_for_s, 0.0)
    for name, slot in slots:
        if slot.model is None or slot.last_call > idle_since or slot.breaker.state != "closed":
            continue
        started = timer()
        try:
            validated_scores(slot.model.predict(features.empty(), now=clock(), top=5), 5, slot.score_range)
        except Exception as exc:  # a probe is not a request: the breaker learns from requests only
            logger.debug("inference.probe_failed %s: %r", name, exc)
            continue
        finished = timer()
        slot.latency.record((finished - started) * 1000.0)
        slot.last_call = finished
        probed.append(name)
    return probed

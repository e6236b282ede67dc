"""Who is sending: crawler detection and device class from the User-Agent header.

Crawlers are recognised with the maintained ``crawlerdetect`` patterns; the device class (desktop,
mobile, tablet, other) comes from ``user-agents``. Both are cached per distinct User-Agent string:
a site sees few of them, and the regex sets are large.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import user_agents
from crawlerdetect import CrawlerDetect

_local = threading.local()


def _detector() -> CrawlerDetect:
    # CrawlerDetect keeps per-call state on the instance: one per thread.
    detector = getattr(_local, "detector", None)
    if detector is None:
        detector = _local.detector = CrawlerDetect()
    return detector


@lru_cache(maxsize=4096)
def user_agent_is_bot(user_agent: str) -> bool:
    """True for crawlers, bots and HTTP libraries; also for an empty User-Agent (browsers always send one)."""
    if not user_agent.strip():
        return True
    return bool(_detector().isCrawler(user_agent)) or bool(user_agents.parse(user_agent).is_bot)


@lru_cache(maxsize=4096)
def user_agent_device(user_agent: str) -> str:
    """``desktop``, ``mobile``, ``tablet`` or ``other``."""
    if not user_agent:
        return "other"
    parsed = user_agents.parse(user_agent)
    if parsed.is_tablet:
        return "tablet"
    if parsed.is_mobile:
        return "mobile"
    if parsed.is_pc:
        return "desktop"
    return "other"

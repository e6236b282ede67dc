"""Content negotiation for the JSON-only hot endpoints: always the view's first renderer (JSON).

DRF's default negotiation parses the ``Accept`` header into media types and matches them against every
renderer on each request: ~14% of the interests request's HTTP-layer CPU in a profile
(docs/benchmarks.md). The interests endpoints answer JSON only (their OpenAPI schema says so), so the
header is not consulted: a client asking for something else gets JSON rather than a 406. This is DRF's
documented ``IgnoreClientContentNegotiation`` pattern.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request


class FirstRendererNegotiation(DefaultContentNegotiation):
    """DRF's negotiation for request bodies (parsers); the first renderer for responses."""

    def select_renderer(
        self, request: Request, renderers: Sequence[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type

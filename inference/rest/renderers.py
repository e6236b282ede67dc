"""JSON rendering for the hot API endpoints with orjson.

DRF's ``JSONRenderer`` runs ``json.dumps`` with its own encoder class and then escapes U+2028/U+2029 (for
JSON embedded in HTML); an answer here is a small dict of strings, numbers and lists, which orjson writes
in a few microseconds. The values are the same, in the same compact JSON (floats in shortest form: ``1e-7``
where ``json`` writes ``1e-07``) with non-ASCII text left as UTF-8 (as DRF's
defaults ``COMPACT_JSON`` and ``UNICODE_JSON``). A value orjson cannot write (a ``Decimal``, a lazy
translation string) falls back to DRF's renderer, so the output never depends on which one ran.
"""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer


class ORJSONRenderer(JSONRenderer):
    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: dict[str, Any] | None = None) -> bytes:
        if data is None:
            return b""
        try:
            return orjson.dumps(data)
        except TypeError:
            pass
        rendered: bytes = super().render(data, accepted_media_type, renderer_context)
        return rendered

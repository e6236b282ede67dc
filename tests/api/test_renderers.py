"""The hot endpoints' orjson renderer writes the JSON DRF's JSONRenderer writes (compact, UTF-8)."""

from __future__ import annotations

import json
from decimal import Decimal

from rest_framework.renderers import JSONRenderer

from inference.rest.renderers import ORJSONRenderer


def test_same_bytes_as_drf_for_an_interests_answer() -> None:
    answer = {"categories": [{"category": "café-culture", "score": 0.650484}, {"category": "x", "score": 1e-07}],
              "served_by": "neural", "model_version": "neural-1", "fallback_reason": None, "elapsed_ms": 1.567}
    fast, drf = ORJSONRenderer().render(answer), JSONRenderer().render(answer)
    assert json.loads(fast) == json.loads(drf)
    assert fast.replace(b"1e-7", b"1e-07") == drf  # byte for byte but the exponent's zero padding
    assert "café".encode() in fast


def test_values_orjson_cannot_write_fall_back_to_drf() -> None:
    data = {"amount": Decimal("1.50")}
    assert ORJSONRenderer().render(data) == JSONRenderer().render(data)
    assert ORJSONRenderer().render(None) == b""

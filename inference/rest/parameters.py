"""Hand-written parsing of the interests parameters (cheaper than a serializer on the hot path).

Each parser returns the value or raises :class:`BadParameter` naming the parameter and the problem;
the views turn that into a 400 with ``{"errors": {parameter: problem}}``. Types are exact: ``top`` in a
query string is ASCII digits only (Python's ``int()`` would also take ``"٥"``, ``"+5"`` or ``" 5"``), in a
JSON body a JSON integer (not ``"5"``, not ``5.0``); user ids follow ``inference.user_ids``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inference.user_ids import USER_ID_MAX, USER_ID_RULE, user_id_valid

TOP_DEFAULT = 10
TOP_MAX = 100
BATCH_MAX = 100
BATCH_FIELDS = ("user_ids", "top")
_TOP_PROBLEM = f"must be an integer between 1 and {TOP_MAX}"

__all__ = [
    "BATCH_FIELDS", "BATCH_MAX", "TOP_DEFAULT", "TOP_MAX", "USER_ID_MAX", "BadParameter", "batch_fields_check",
    "top_parse_json", "top_parse_query", "user_id_parse", "user_ids_parse",
]


class BadParameter(ValueError):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem

    def body(self) -> dict[str, Any]:
        return {"errors": {self.name: self.problem}}


def top_parse_query(values: list[str]) -> int:
    """``top`` from a query string's values for it: TOP_DEFAULT when absent, else exactly one value of ASCII
    digits, 1..TOP_MAX (``?top=5&top=6`` is refused rather than silently taking one of them)."""
    if not values:
        return TOP_DEFAULT
    raw = values[0]
    if len(values) > 1:
        raise BadParameter("top", "given more than once")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= TOP_MAX):
        raise BadParameter("top", _TOP_PROBLEM)
    return int(raw)


def top_parse_json(raw: Any) -> int:
    """``top`` from a JSON body: a JSON integer (``type(raw) is int``: not a bool, float or string)."""
    if type(raw) is not int or not 1 <= raw <= TOP_MAX:
        raise BadParameter("top", _TOP_PROBLEM)
    return raw


def user_id_parse(raw: Any, *, name: str = "user_id") -> str:
    # ids are opaque (an unknown one simply gets a cold start), but follow the one rule of every endpoint
    if not user_id_valid(raw):
        raise BadParameter(name, USER_ID_RULE)
    return str(raw)


def user_ids_parse(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw:
        raise BadParameter("user_ids", f"must be a non-empty list of at most {BATCH_MAX} user ids")
    if len(raw) > BATCH_MAX:
        raise BadParameter("user_ids", f"must hold at most {BATCH_MAX} user ids")
    return [user_id_parse(item, name=f"user_ids[{index}]") for index, item in enumerate(raw)]


def batch_fields_check(body: Mapping[str, Any]) -> None:
    """Refuse a field the batch endpoint does not know (the first one, by name)."""
    for key in body:
        if key not in BATCH_FIELDS:
            raise BadParameter(str(key)[:64], "unknown field (expected user_ids and top)")

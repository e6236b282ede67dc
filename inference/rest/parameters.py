"""Parsing of the single-user interests request's path and query (cheaper than a serializer on the hot path).

The OpenAPI schema's parameters are built from the same constants (``TOP_MAX``, the user id pattern);
the batch body is a serializer (``views.InterestsBatchInputSerializer``).

Each parser returns the value or raises :class:`BadParameter` naming the parameter and the problem;
the view turns that into a 400 with ``{"errors": {parameter: problem}}``. ``top`` in a query string is
ASCII digits only (Python's ``int()`` would also take ``"٥"``, ``"+5"`` or ``" 5"``); user ids follow
``inference.user_ids``.
"""

from __future__ import annotations

from typing import Any

from inference.user_ids import USER_ID_MAX, USER_ID_RULE, user_id_valid

TOP_DEFAULT = 10
TOP_MAX = 100
BATCH_MAX = 100
_TOP_PROBLEM = f"must be an integer between 1 and {TOP_MAX}"

__all__ = ["BATCH_MAX", "TOP_DEFAULT", "TOP_MAX", "USER_ID_MAX", "BadParameter", "top_parse_query", "user_id_parse"]


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


def user_id_parse(raw: Any, *, name: str = "user_id") -> str:
    # ids are opaque (an unknown one simply gets a cold start), but follow the one rule of every endpoint
    if not user_id_valid(raw):
        raise BadParameter(name, USER_ID_RULE)
    return str(raw)



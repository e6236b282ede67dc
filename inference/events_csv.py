"""The generic events CSV (EVALUATION.md): its header and its timestamps, one rule for both readers.

``tracking``'s importer and the evaluation's reader both use it (the importer through
``inference.api``), so a file that one accepts the other reads alike.

* Header: columns are found by name, in any order; names are matched without surrounding spaces or
  case (a UTF-8 BOM is dropped by opening the file as ``utf-8-sig``). ``user_id``, ``item_id``,
  ``categories`` and ``timestamp`` are required, ``type`` is optional; other columns are ignored.
* Timestamps: unix seconds, fractions allowed. A value of at least 1e11 is read as milliseconds
  (as seconds it would be after the year 5138; as milliseconds it is after March 1973), so an export
  in milliseconds (JavaScript, Kafka) is read right rather than as dates thousands of years ahead.
  Values of 1e14 or more (microseconds, nanoseconds), negative or non-finite ones are refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["GENERIC_REQUIRED", "GenericHeader", "generic_header", "timestamp_ms", "timestamp_seconds", "ts_in_ms"]

GENERIC_REQUIRED = ("user_id", "item_id", "categories", "timestamp")
MS_FROM = 1e11
MS_UNTIL = 1e14


@dataclass(frozen=True, slots=True)
class GenericHeader:
    user_id: int
    item_id: int
    categories: int
    timestamp: int
    type: int | None  # column index, None when the file has no type column
    width: int  # columns in the header
    ignored: tuple[str, ...]  # columns neither required nor ``type``


def generic_header(names: Sequence[str], *, source: object = "file") -> GenericHeader:
    """Where each column is; ``ValueError`` naming what is missing (or repeated)."""
    clean = [name.strip().lstrip("\ufeff").strip().lower() for name in names]
    wanted = (*GENERIC_REQUIRED, "type")
    repeated = sorted({name for name in clean if name in wanted and clean.count(name) > 1})
    missing = [name for name in GENERIC_REQUIRED if name not in clean]
    if missing or repeated:
        problem = f"missing columns {missing}" if missing else f"repeated columns {repeated}"
        raise ValueError(
            f"{source}: {problem}; the header must name user_id, item_id, categories, timestamp "
            f"(any order, optional type, other columns ignored), got {list(names)}"
        )
    return GenericHeader(
        user_id=clean.index("user_id"),
        item_id=clean.index("item_id"),
        categories=clean.index("categories"),
        timestamp=clean.index("timestamp"),
        type=clean.index("type") if "type" in clean else None,
        width=len(clean),
        ignored=tuple(name for name, low in zip(names, clean, strict=True) if low not in wanted),
    )


def _number(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"timestamp {text!r} is not a number (unix seconds or milliseconds)") from None
    if not math.isfinite(value) or value < 0 or value >= MS_UNTIL:
        raise ValueError(f"timestamp {text!r} is neither unix seconds nor milliseconds")
    return value


def ts_in_ms(text: str) -> bool:
    """Whether a valid timestamp is taken as milliseconds."""
    return float(text) >= MS_FROM


def timestamp_seconds(text: str) -> float:
    """Unix seconds of a file's timestamp (see the module docstring); ``ValueError`` when it is none."""
    value = _number(text)
    return value / 1000.0 if value >= MS_FROM else value


def timestamp_ms(text: str) -> int:
    """The same instant in whole milliseconds (what events carry)."""
    value = _number(text)
    return int(value) if value >= MS_FROM else int(value * 1000)

"""Reading clickstream files into :class:`EventRecord` lists, ordered by time.

Two formats: the project's generic events CSV (``user_id,item_id,categories,timestamp[,type]``,
categories pipe-separated, unix seconds or milliseconds: ``inference.events_csv``) and, as a convenience, a MovieLens directory
(``ratings.csv`` + ``movies.csv``: each rating is one ``page_view`` of a movie whose genres are its
categories; ``(no genres listed)`` means none). Category labels become the slugs the importer gives
them (``Sci-Fi`` -> ``sci-fi``), so a model trained from a file names categories as served events do.
The sort is stable, so events sharing a timestamp keep
the file order: the evaluation's user split depends on it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from inference.events import AD_TYPES, EVENT_TYPES, EventRecord, category_slugs
from inference.events_csv import generic_header, timestamp_seconds, ts_in_ms
from inference.user_ids import USER_ID_RULE, user_id_valid

__all__ = ["ReadReport", "events_read", "events_read_generic", "events_read_movielens"]


@dataclass
class ReadReport:
    """What reading a generic file left out or interpreted, for the command to say."""

    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, detail)
    ignored_columns: tuple[str, ...] = ()
    ms_timestamps: int = 0  # rows whose timestamp was read as milliseconds


@lru_cache(maxsize=65536)  # a file repeats the same few category fields on every row
def _categories(field: str) -> tuple[str, ...]:
    return tuple(category_slugs(field.split("|")))


def events_read_generic(path: Path, *, report: ReadReport | None = None) -> list[EventRecord]:
    """Read the generic events CSV; rows are returned sorted by timestamp (stable).

    Columns by name in any order (``inference.events_csv``: a BOM, other columns and timestamps in
    milliseconds are understood). A row the importer would quarantine for its shape (wrong number of
    fields, a user id outside the rule, no timestamp, an unknown type, an ad event without its ad) is left out and noted in
    ``report`` (with the quarantine's reason names); without ``report`` the first such row is a
    ``ValueError``.
    """
    records: list[EventRecord] = []
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        columns = generic_header(next(reader, []), source=path)
        if report is not None:
            report.ignored_columns = columns.ignored
        for line, fields in enumerate(reader, start=2):
            if not fields:
                continue
            reason = problem = ""
            if len(fields) != columns.width:
                reason, problem = "invalid_row", f"{len(fields)} columns, expected {columns.width}"
            else:
                user_id = fields[columns.user_id]
                event_type = (fields[columns.type].strip() if columns.type is not None else "") or "page_view"
                try:
                    ts = timestamp_seconds(fields[columns.timestamp])
                except ValueError as exc:
                    reason, problem = "invalid_ts", str(exc)
                if not user_id_valid(user_id):
                    reason, problem = "invalid_user_id", f"user_id {user_id!r} {USER_ID_RULE}"
                elif event_type not in EVENT_TYPES:
                    reason = "invalid_event_type"
                    problem = f"type {event_type!r} is not one of {', '.join(sorted(EVENT_TYPES))}"
                elif event_type in AD_TYPES:  # the file has no ad columns: the importer quarantines these
                    reason, problem = "missing_ad", f"{event_type} needs an ad object (no ad columns in the file)"
            if problem:
                if report is None:
                    raise ValueError(f"{path}, line {line}: {problem}")
                report.skipped.append((line, reason, problem))
                continue
            if report is not None and ts_in_ms(fields[columns.timestamp]):
                report.ms_timestamps += 1
            records.append(
                EventRecord(
                    user_id=user_id,
                    ts=ts,
                    type=event_type,
                    categories=_categories(fields[columns.categories]),
                    item_id=fields[columns.item_id],
                )
            )
    records.sort(key=lambda r: r.ts)
    return records


def events_read_movielens(directory: Path) -> list[EventRecord]:
    """Read a MovieLens directory (``ratings.csv``, ``movies.csv``) as page views of movies."""
    directory = Path(directory)
    genres: dict[str, tuple[str, ...]] = {}
    with (directory / "movies.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            genres[row["movieId"]] = _categories(row["genres"])
    records: list[EventRecord] = []
    with (directory / "ratings.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            records.append(
                EventRecord(
                    user_id=row["userId"],
                    ts=float(row["timestamp"]),
                    type="page_view",
                    categories=genres.get(row["movieId"], ()),
                    item_id=row["movieId"],
                )
            )
    records.sort(key=lambda r: r.ts)
    return records


def events_read(
    path: Path, *, format: str = "generic", report: ReadReport | None = None
) -> list[EventRecord]:
    """Read ``path`` in ``format`` (``generic`` CSV file or ``movielens`` directory); ``report``: see
    :func:`events_read_generic`."""
    if format == "generic":
        return events_read_generic(path, report=report)
    if format == "movielens":
        return events_read_movielens(path)
    raise ValueError(f"unknown events format {format!r}: use generic or movielens")

"""Reading clickstream files into :class:`EventRecord` lists, ordered by time.

Two formats: the project's generic events CSV (``user_id,item_id,categories,timestamp[,type]``,
categories pipe-separated, unix seconds) and, as a convenience, a MovieLens directory
(``ratings.csv`` + ``movies.csv``: each rating is one ``page_view`` of a movie whose genres are its
categories; ``(no genres listed)`` means none). Category labels become the slugs the importer gives
them (``Sci-Fi`` -> ``sci-fi``), so a model trained from a file names categories as served events do.
The sort is stable, so events sharing a timestamp keep
the file order: the evaluation's user split depends on it.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

from inference.events import EventRecord

__all__ = ["events_read", "events_read_generic", "events_read_movielens"]


@lru_cache(maxsize=65536)  # a file repeats the same few category fields on every row
def _categories(field: str) -> tuple[str, ...]:
    from tracking.api import category_slugs  # the importer's rule ("(no genres listed)" means none)

    return tuple(category_slugs(field.split("|")))


def events_read_generic(path: Path) -> list[EventRecord]:
    """Read the generic events CSV; rows are returned sorted by timestamp (stable)."""
    records: list[EventRecord] = []
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"user_id", "item_id", "categories", "timestamp"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for row in reader:
            records.append(
                EventRecord(
                    user_id=row["user_id"],
                    ts=float(row["timestamp"]),
                    type=(row.get("type") or "page_view").strip() or "page_view",
                    categories=_categories(row["categories"] or ""),
                    item_id=row["item_id"] or "",
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


def events_read(path: Path, *, format: str = "generic") -> list[EventRecord]:
    """Read ``path`` in ``format`` (``generic`` CSV file or ``movielens`` directory)."""
    if format == "generic":
        return events_read_generic(path)
    if format == "movielens":
        return events_read_movielens(path)
    raise ValueError(f"unknown events format {format!r}: use generic or movielens")

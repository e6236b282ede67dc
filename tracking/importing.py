"""Import of external clickstreams: the generic events CSV and MovieLens, through the live schema.

Promises:

* Every row becomes a raw event dict checked by the same ``tracking.schema`` as live traffic; bad rows
  are quarantined (source ``import``, ``batch_index`` = the row's line number) with their reason.
* ``event_id`` is derived from the row's content (format, user, item, timestamp, type): its first 48
  bits are the event time in ms, the rest a SHA-1 of the content (a version-8 UUID), so importing the
  same file again stores nothing twice (identical rows are one event) and ids are time-ordered.
* Category labels become slugs (``Sci-Fi`` -> ``sci-fi``); missing ``content.Category`` rows are created.
* Rows are written in large transactions with the raw multi-row ``INSERT ... ON CONFLICT DO NOTHING``
  of ``tracking.storage`` (no ORM per row), with the ledger counters in the same transaction.
* Accepted events are handed to ``inference.api.events_observe`` in chunks (unless ``observe=False``;
  then the inserts skip ``RETURNING`` and count the rows written instead).
* Reading and validating run in forked worker processes (each takes alternate blocks of lines) while
  the calling process writes; the workers make no query. Chunks may be written in any order.

Generic file (EVALUATION.md): header ``user_id,item_id,categories,timestamp[,type]`` (by name, any
order, other columns ignored), categories pipe-separated, timestamp in unix seconds (milliseconds from
1e11: ``inference.events_csv``), type defaulting to ``page_view``.
MovieLens directory: ``ratings.csv`` (each rating is a ``page_view`` of the movie) and ``movies.csv``
(its genres are the categories; ``(no genres listed)`` means none).
"""

from __future__ import annotations

import csv
import gc
import hashlib
import logging
import multiprocessing
import os
import queue
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from inference.api import EventRecord, category_slugs, generic_header, timestamp_ms
from tracking.features_backlog import events_observe_safe
from tracking.models import QuarantinedEvent
from tracking.schema import Limits, Rejection, ValidEvent, event_validate, payload_text
from tracking.services import (
    IngestContext,
    event_record_from,
    limits_for,
    quarantine_row,
    row_from_event,
)
from tracking.storage import Row, db_params, events_insert, events_insert_count, ledger_add

logger = logging.getLogger(__name__)

IMPORT_NAMESPACE = uuid.UUID("5b0f3c1e-8d0a-4a57-9a53-6f1f0f3f2a10")
INVALID_ROW = "invalid_row"


@dataclass(frozen=True, slots=True)
class ImportResult:
    rows: int
    accepted: int
    duplicates: int
    quarantined: int
    categories_created: int
    reasons: dict[str, int] = field(default_factory=dict)  # quarantine reason -> rows, most first


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One input row as a raw event, or the reason it could not even be made into one."""

    line: int
    raw: dict[str, Any]
    labels: dict[str, str]  # slug -> label, for categories to create
    problem: str = ""


_NAMESPACE_BYTES = IMPORT_NAMESPACE.bytes


def _event_id(ts_ms: object, *parts: str) -> str:
    """A deterministic, time-ordered UUID (version 8, RFC 9562 layout of UUIDv7) for an imported row.

    The first 48 bits are the event's unix time in ms (so ids of a file arrive roughly in order and
    the unique index is appended to rather than written at random), the rest a SHA-1 of the namespace
    and ``parts``: the same row always gets the same id, so re-importing stores nothing twice.
    """
    h = hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode("utf-8")).hexdigest()
    if isinstance(ts_ms, int):
        head = f"{ts_ms & 0xFFFFFFFFFFFF:012x}"
        return f"{head[:8]}-{head[8:]}-8{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"
    # version 8 in the 13th hex digit, RFC 4122 variant (10xx) in the 17th
    return f"{h[:8]}-{h[8:12]}-8{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


# A share of a file for one of several preparing processes: (worker, workers, lines per block); the
# worker yields only rows in blocks ``line // lines_per_block`` with ``block % workers == worker``.
Share = tuple[int, int, int]


def _mine(line: int, share: Share | None) -> bool:
    return share is None or (line // share[2]) % share[1] == share[0]


def generic_rows(path: Path, share: Share | None = None) -> Iterator[SourceRow]:
    """Rows of a generic events CSV (only those of ``share``, when given). Columns by header name, in
    any order, other columns ignored, a BOM dropped; timestamps in seconds, or milliseconds from 1e11
    (``inference.api.generic_header`` / ``timestamp_ms``: the evaluation reads files alike)."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle)
        columns = generic_header(next(reader, []), source=path)
        width = columns.width
        for line, fields in enumerate(reader, start=2):
            if not fields or not _mine(line, share):
                continue
            if len(fields) != width:
                yield SourceRow(line, {"row": fields}, {}, problem=f"{len(fields)} columns, expected {width}")
                continue
            user_id, item_id = fields[columns.user_id], fields[columns.item_id]
            categories, timestamp = fields[columns.categories], fields[columns.timestamp]
            event_type = (fields[columns.type].strip() if columns.type is not None else "") or "page_view"
            labels = category_slugs(categories.split("|")) if categories else {}
            ts = _ts_ms(timestamp)
            raw = {
                "event_id": _event_id(ts, "generic", user_id, item_id, timestamp, event_type),
                "type": event_type,
                "user_id": user_id,
                "ts": ts,
                "item_id": item_id,
                "categories": list(labels),
            }
            yield SourceRow(line, raw, labels)


def _ts_ms(value: str) -> object:
    try:
        return timestamp_ms(value)
    except ValueError:
        return value  # the schema rejects it with invalid_ts


def movielens_rows(directory: Path, share: Share | None = None) -> Iterator[SourceRow]:
    """Rows of a MovieLens directory: each rating a page_view of the movie, genres as categories
    (only those of ``share``, when given)."""
    genres: dict[str, dict[str, str]] = {}
    with (directory / "movies.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            genres[row["movieId"]] = category_slugs((row.get("genres") or "").split("|"))
    with (directory / "ratings.csv").open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        try:
            user_col, movie_col, ts_col = (
                header.index("userId"),
                header.index("movieId"),
                header.index("timestamp"),
            )
        except ValueError:
            raise ValueError(
                f"{directory}/ratings.csv: header must name userId, movieId and timestamp"
            ) from None
        width = len(header)
        no_labels: dict[str, str] = {}
        for line, fields in enumerate(reader, start=2):
            if not _mine(line, share):
                continue
            if len(fields) != width:
                yield SourceRow(line, {"row": fields}, {}, problem=f"{len(fields)} columns, expected {width}")
                continue
            user_id, movie_id, timestamp = fields[user_col], fields[movie_col], fields[ts_col]
            labels = genres.get(movie_id, no_labels)
            ts = _ts_ms(timestamp)
            raw = {
                "event_id": _event_id(ts, "movielens", user_id, movie_id, timestamp),
                "type": "page_view",
                "user_id": user_id,
                "ts": ts,
                "item_id": movie_id,
                "categories": list(labels),
            }
            yield SourceRow(line, raw, labels)


def categories_ensure(*, labels: dict[str, str]) -> int:
    """Create the ``content.Category`` rows missing for ``labels`` (slug -> name); return how many."""
    from adsite.content.models import Category

    if not labels:
        return 0
    existing = set(Category.objects.filter(slug__in=list(labels)).values_list("slug", flat=True))
    missing = [Category(slug=slug, name=name[:200]) for slug, name in labels.items() if slug not in existing]
    Category.objects.bulk_create(missing, ignore_conflicts=True)
    return len(missing)


@dataclass(slots=True)
class _Prepared:
    """One chunk after validation: what the writer needs, built off the writer's thread."""

    size: int
    db_rows: list[Row]
    valid: list[ValidEvent]
    bad: list[QuarantinedEvent]
    labels: dict[str, str]
    params: list[tuple[Any, ...]] = field(default_factory=list)
    accepted: int = 0  # rows that passed validation (offered to the database)


def _prepare(
    batch: list[SourceRow],
    *,
    limits: Limits,
    context: IngestContext,
    received_at_us: int,
    keep_valid: bool = True,
) -> _Prepared:
    prepared = _Prepared(len(batch), [], [], [], {})
    for source in batch:
        outcome: ValidEvent | Rejection = (
            Rejection(INVALID_ROW, source.problem)
            if source.problem
            else event_validate(source.raw, limits=limits)
        )
        if isinstance(outcome, Rejection):
            payload, size = payload_text(source.raw, max_chars=65_536)
            user_id = source.raw.get("user_id")
            prepared.bad.append(
                quarantine_row(
                    reason=outcome.reason,
                    detail=outcome.detail,
                    payload=payload,
                    payload_bytes=size,
                    context=context,
                    batch_index=source.line,
                    user_id=user_id if isinstance(user_id, str) else "",
                )
            )
            continue
        prepared.valid.append(outcome)
        prepared.db_rows.append(row_from_event(outcome, context=context, received_at_us=received_at_us))
        for slug in outcome.categories:
            if slug not in prepared.labels:
                prepared.labels[slug] = source.labels.get(slug, slug)
    prepared.params = db_params(prepared.db_rows)
    prepared.accepted = len(prepared.db_rows)
    # The writer needs only the converted rows (and the events, to observe): less to hand over.
    prepared.db_rows = []
    if not keep_valid:
        prepared.valid = []
    return prepared


_DONE = "done"


def _fork_context() -> Any:
    """The ``fork`` multiprocessing context where the platform has one (the row source, a generator,
    is inherited by the child rather than pickled), else ``None`` (prepare on a thread instead)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    return multiprocessing.get_context("fork")


def default_workers() -> int:
    """Preparing processes by default: one per core beyond the writer's, at least 2, at most 4.

    Preparing costs about 2.5 times what writing does, so even on 2 cores two preparers keep the
    writer busier than one (measured: docs/benchmarks.md, Tracking).
    """
    return min(4, max(2, (os.cpu_count() or 2) - 1))


def events_import(
    *,
    rows: Iterable[SourceRow] | Callable[[Share | None], Iterable[SourceRow]],
    observe: bool = True,
    chunk_size: int = 20_000,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
    workers: int | None = None,
) -> ImportResult:
    """Validate and store ``rows`` in transactions of about ``chunk_size`` rows (see the module docstring).

    ``rows``: the rows, or a function of a :data:`Share` giving them (``generic_rows``,
    ``movielens_rows`` bound to their path), which lets ``workers`` forked processes each read the
    file and prepare (build, validate, convert: pure Python) its own blocks of lines while this
    process writes, instead of taking turns on the GIL. Where the platform cannot fork, or
    ``workers`` is 0, one helper thread prepares everything. Preparing makes no query. ``None``:
    :func:`default_workers`.
    """
    if workers is None:
        workers = default_workers()
    received_at = now or timezone.now()
    context = IngestContext(source="import", received_at=received_at)
    received_at_us = int(received_at.timestamp() * 1_000_000)
    limits = limits_for(now_ms=received_at_us // 1000)
    total = accepted = duplicates = quarantined = created = 0
    labels_seen: set[str] = set()
    reasons: Counter[str] = Counter()
    fork = _fork_context() if workers > 0 else None
    n_workers = workers if fork is not None and callable(rows) else 1
    chunks: Any = fork.Queue(maxsize=2 * n_workers) if fork is not None else queue.Queue(maxsize=2)
    stop = threading.Event()

    def prepare(chunk: list[SourceRow]) -> _Prepared:
        return _prepare(
            chunk, limits=limits, context=context, received_at_us=received_at_us, keep_valid=observe
        )

    def produce(worker: int) -> None:
        if fork is not None:
            # A forked child: its rows make no reference cycles, and a collection would walk (and so
            # copy) every page inherited from the parent.
            gc.disable()
        try:
            if callable(rows):
                share = (worker, n_workers, chunk_size) if n_workers > 1 else None
                sources = rows(share)
            else:
                sources = rows
            chunk: list[SourceRow] = []
            for source in sources:
                chunk.append(source)
                if len(chunk) >= chunk_size:
                    item = prepare(chunk)
                    while not stop.is_set():
                        try:
                            chunks.put(item, timeout=0.5)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                    chunk = []
            if chunk:
                chunks.put(prepare(chunk))
            chunks.put(_DONE)
        except BaseException as exc:  # handed to the writer, which re-raises it
            try:
                chunks.put(exc)
            except Exception:  # not picklable
                chunks.put(RuntimeError(repr(exc)))

    producers: list[Any] = [
        fork.Process(target=produce, args=(worker,), name=f"import-prepare-{worker}", daemon=True)
        if fork is not None
        else threading.Thread(target=produce, args=(worker,), name="import-prepare", daemon=True)
        for worker in range(n_workers)
    ]
    if fork is not None:
        gc.freeze()  # what exists now is shared with the children untouched (see produce)
    for producer in producers:
        producer.start()

    def next_item() -> object:
        while True:
            try:
                return chunks.get(timeout=1.0)
            except queue.Empty:
                if not any(producer.is_alive() for producer in producers):
                    try:  # it may have put its last item just before exiting
                        return chunks.get(timeout=1.0)
                    except queue.Empty:
                        raise RuntimeError("import: the preparing process ended unexpectedly") from None

    running = n_workers
    try:
        while running:
            item = next_item()
            if item == _DONE:
                running -= 1
                continue
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, _Prepared)
            new_labels = {slug: label for slug, label in item.labels.items() if slug not in labels_seen}
            with transaction.atomic():
                created += categories_ensure(labels=new_labels)
                if observe:
                    # (the canonical rows stayed with the preparer: the converted ones stand in)
                    inserted = events_insert(item.params, params=item.params)
                    n_inserted = len(inserted)
                else:  # no ids needed: skip RETURNING, count the rows each statement wrote
                    inserted = set()
                    n_inserted = events_insert_count(item.params, params=item.params)
                if item.bad:
                    QuarantinedEvent.objects.bulk_create(item.bad)
                ledger_add({"received": item.size, "duplicates": item.accepted - n_inserted})
            labels_seen.update(new_labels)
            total += item.size
            accepted += n_inserted
            duplicates += item.accepted - n_inserted
            quarantined += len(item.bad)
            reasons.update(bad.reason for bad in item.bad)
            if observe and inserted:
                pairs: list[tuple[str, EventRecord]] = []
                for event in item.valid:
                    if event.event_id in inserted:
                        inserted.discard(event.event_id)
                        pairs.append((event.event_id, event_record_from(event, device="other")))
                # The online update expects each visitor's events in time order; files need not be sorted.
                pairs.sort(key=lambda pair: pair[1].ts)
                # past events: no visitor is reading now, so no stored answer is recomputed for them
                events_observe_safe([record for _id, record in pairs], event_ids=[event_id for event_id, _ in pairs],
                                    answers_refresh=False)
            if progress is not None:
                progress(item.size)
    finally:
        stop.set()
        for producer in producers:
            if fork is not None and producer.is_alive():
                producer.terminate()
            producer.join(timeout=5)
        if fork is not None:
            chunks.close()
            chunks.cancel_join_thread()
            gc.unfreeze()
    logger.info(
        "tracking.imported",
        extra={"rows": total, "accepted": accepted, "duplicates": duplicates, "quarantined": quarantined},
    )
    return ImportResult(total, accepted, duplicates, quarantined, created, dict(reasons.most_common()))

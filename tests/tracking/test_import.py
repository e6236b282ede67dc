"""manage.py import_events: generic CSV and MovieLens through the live schema, re-import dedupes."""

from __future__ import annotations

import csv
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from adsite.content.models import Category
from tracking.models import Event, QuarantinedEvent
from tracking.selectors import ledger_get

pytestmark = pytest.mark.django_db


def write_csv(
    path: Path,
    rows: list[list[str]],
    header: tuple[str, ...] = ("user_id", "item_id", "categories", "timestamp", "type"),
) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run_import(*args: str) -> str:
    out = StringIO()
    call_command("import_events", *args, "--no-progress", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_generic_csv_is_imported_and_reimport_stores_nothing_twice(tmp_path: Path, observed: Any) -> None:
    path = write_csv(
        tmp_path / "events.csv",
        [
            ["u1", "a1", "Home & Garden|sports", "1700000000", ""],
            ["u1", "a2", "sports", "1700000060", "click"],
            ["u2", "a1", "", "1700000120", "page_view"],
            ["u2", "a3", "sports", "yesterday", "page_view"],  # bad timestamp
            ["u3", "a3", "sports", "1700000180", "purchase"],  # unknown type
            ["u3", "a3", "sports"],  # short row
        ],
    )
    run_import(str(path))
    assert Event.objects.count() == 3
    first = Event.objects.get(item_id="a1", user_id="u1")
    assert (first.type, first.source, first.categories) == ("page_view", "import", ["home-garden", "sports"])
    assert first.ts.timestamp() == 1700000000
    assert Category.objects.get(slug="home-garden").name == "Home & Garden"
    reasons = dict(QuarantinedEvent.objects.values_list("batch_index", "reason"))
    assert reasons == {5: "invalid_ts", 6: "invalid_event_type", 7: "invalid_row"}
    assert len(observed.records) == 3
    assert len(observed.without_answers) == 3  # past events: no stored answer recomputed for them

    run_import(str(path))
    assert Event.objects.count() == 3
    ledger = ledger_get()
    assert ledger["duplicates"] == 3 and ledger["unaccounted"] == 0


def test_reimport_without_features_counts_every_row_as_duplicate(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "events.csv",
        [["u1", "a1", "news", "1700000000", ""], ["u2", "a2", "news", "1600000000", "click"]],
    )
    assert "2 stored, 0 duplicates" in run_import(str(path), "--no-features")
    assert "0 stored, 2 duplicates" in run_import(str(path), "--no-features")
    assert Event.objects.count() == 2
    ledger = ledger_get()
    assert ledger["duplicates"] == 2 and ledger["unaccounted"] == 0


def test_event_ids_are_deterministic_and_ordered_by_event_time(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "events.csv",
        [["u1", "a1", "news", "1700000060", ""], ["u1", "a1", "news", "1700000000", ""]],
    )
    run_import(str(path), "--no-features")
    ids = [str(event_id) for event_id in Event.objects.order_by("ts").values_list("event_id", flat=True)]
    assert ids == sorted(ids)
    assert int(ids[0].replace("-", "")[:12], 16) == 1_700_000_000_000


@pytest.mark.parametrize("workers", ["0", "1", "3"])
def test_import_gives_the_same_result_prepared_by_a_thread_or_several_processes(
    tmp_path: Path, workers: str
) -> None:
    rows = [["u1", f"a{n}", "news", str(1_700_000_000 + n), ""] for n in range(40)]
    rows[7][3] = "yesterday"  # line 9
    rows[30][0] = ""  # line 32: user_id required
    path = write_csv(tmp_path / "events.csv", rows)
    output = run_import(str(path), "--no-features", "--chunk-size", "5", "--workers", workers)
    assert "40 rows in" in output and "38 stored, 0 duplicates, 2 quarantined" in output
    assert Event.objects.count() == 38
    assert set(QuarantinedEvent.objects.values_list("batch_index", flat=True)) == {9, 32}
    assert ledger_get()["unaccounted"] == 0


def test_rows_given_as_an_iterable_are_imported(tmp_path: Path) -> None:
    from tracking.importing import events_import, generic_rows

    path = write_csv(tmp_path / "events.csv", [["u1", f"a{n}", "news", "1700000000", ""] for n in range(7)])
    result = events_import(rows=generic_rows(path), observe=False, chunk_size=3)
    assert (result.rows, result.accepted, result.duplicates) == (7, 7, 0)
    assert Event.objects.count() == 7


def test_generic_csv_without_type_column_defaults_to_page_view(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "e.csv",
        [["u1", "a1", "news", "1700000000"]],
        header=("user_id", "item_id", "categories", "timestamp"),
    )
    run_import(str(path), "--no-features")
    assert Event.objects.get().type == "page_view"


def test_wrong_header_is_refused(tmp_path: Path) -> None:
    from django.core.management.base import CommandError

    path = write_csv(tmp_path / "e.csv", [["1"]], header=("who", "what"))
    with pytest.raises(CommandError):
        run_import(str(path))


def test_movielens_directory_is_imported_as_page_views_of_movies(tmp_path: Path) -> None:
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Children\n2,"Odd, The (2001)",(no genres listed)\n'
    )
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,3.0,964982800\n"
    )
    run_import("--format", "movielens", str(tmp_path), "--no-features")
    stored = {event.item_id: event.categories for event in Event.objects.all()}
    assert stored == {"1": ["adventure", "children"], "2": []}
    assert set(
        Category.objects.filter(slug__in=["adventure", "children"]).values_list("slug", flat=True)
    ) == {"adventure", "children"}


@pytest.mark.slow
def test_movielens_small_imports_every_rating_once(shared_data: Path) -> None:
    directory = shared_data / "movielens-latest-small"
    output = run_import("--format", "movielens", str(directory), "--no-features")
    assert "100836 rows in" in output
    assert Event.objects.count() == 100_836
    assert Category.objects.filter(slug="sci-fi").exists()
    out = StringIO()
    call_command("ledger", "--json", stdout=out)
    assert json.loads(out.getvalue())["unaccounted"] == 0


def test_an_export_with_bom_crlf_reordered_extra_columns_and_milliseconds_is_imported(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    lines = [
        "timestamp,session,Categories,item_id,user_id,type",
        "1700000000250,s1,Children's|Arts & Crafts,\"1 Title, The\",user.1+x@example.com,click",
        "1700000060.5,s1,Sci-Fi,2,af3e133428b9e25c55bc59fe534248e6a0c0f17b,",
        "1700000120,s1,news,3,user.1+x@example.com,ad_click",  # no ad columns in the format
        "yesterday,s1,news,4,user.1+x@example.com,page_view",
    ]
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    out = run_import(str(path))
    first = Event.objects.get(item_id="1 Title, The")
    assert first.ts.timestamp() == 1700000000.25  # milliseconds, read as such
    assert (first.type, first.user_id, first.categories) == ("click", "user.1+x@example.com", ["childrens", "arts-crafts"])
    assert Event.objects.get(item_id="2").ts.timestamp() == 1700000060.5
    assert Category.objects.get(slug="childrens").name == "Children's"
    assert dict(QuarantinedEvent.objects.values_list("batch_index", "reason")) == {4: "missing_ad", 5: "invalid_ts"}
    assert "2 stored" in out and "2 quarantined" in out
    assert "quarantined by reason: missing_ad 1, invalid_ts 1" in out


def test_the_importer_and_the_evaluation_reader_slug_and_keep_alike(tmp_path: Path) -> None:
    from inference.evaluation.reading import ReadReport, events_read_generic

    path = write_csv(
        tmp_path / "e.csv",
        [
            ["user.1+x@example.com", "a1", "Children's|Arts & Crafts| Comédie ", "1700000000", ""],
            ["u2", "a2", "Sci-Fi|Film-Noir", "1700000000123", "page_ping"],
            ["u2", "a3", "news", "soon", "page_view"],
            ["u2", "a4", "news", "1700000000", "hover"],
            ["u2", "a5", "news", "1700000000", "ad_impression"],
        ],
    )
    run_import(str(path))
    report = ReadReport()
    read = events_read_generic(path, report=report)
    imported = Event.objects.order_by("ts")
    assert [(e.user_id, e.item_id, tuple(e.categories), e.ts.timestamp()) for e in imported] == [
        (r.user_id, r.item_id, r.categories, r.ts) for r in read
    ]
    assert read[0].categories == ("childrens", "arts-crafts", "comedie")
    skipped = sorted((line, reason) for line, reason, _detail in report.skipped)
    assert skipped == sorted(QuarantinedEvent.objects.values_list("batch_index", "reason"))

"""``manage.py evaluate_interests`` on a generic events CSV: the JSON report's promised shape."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command

from inference.evaluation.reading import ReadReport, events_read_generic


def _write_loyal_csv(path, users=40, events=40):
    categories = ("news", "sport", "travel", "food")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "categories", "timestamp", "type"])
        for u in range(users):
            category = categories[u % len(categories)]
            for i in range(events):
                extra = "|news" if i % 7 == 0 and category != "news" else ""
                writer.writerow(
                    [f"u{u}", f"{category}-{i}", category + extra, 1_600_000_000 + i * 600 + u, ""]
                )


def test_generic_csv_reads_pipe_separated_categories_in_time_order(tmp_path):
    path = tmp_path / "events.csv"
    _write_loyal_csv(path, users=2, events=8)
    records = events_read_generic(path)
    assert len(records) == 16
    assert [r.ts for r in records] == sorted(r.ts for r in records)
    assert records[0].categories == ("news",)
    assert ("sport", "news") in {r.categories for r in records}
    assert {r.type for r in records} == {"page_view"}


def test_command_writes_the_evaluation_json(tmp_path, capsys):
    path = tmp_path / "events.csv"
    _write_loyal_csv(path)
    out = tmp_path / "report.json"
    call_command(
        "evaluate_interests",
        "--events",
        str(path),
        "--split",
        "user",
        "--models",
        "prior",
        "--json",
        str(out),
    )
    report = json.loads(out.read_text())
    assert report["dataset"] == "events.csv"
    assert report["split"] == "user"
    assert report["test_users"] == 40
    assert set(report["results"]) == {"prior", "popularity", "frequency", "recent", "decayed"}
    for result in report["results"].values():
        assert set(result) >= {"ndcg@5", "ndcg@5_ci", "recall@3", "auc"}
        lo, hi = result["ndcg@5_ci"]
        assert lo <= result["ndcg@5"] <= hi
    assert report["results"]["frequency"]["ndcg@5"] > report["results"]["popularity"]["ndcg@5"]
    assert "frequency" in capsys.readouterr().out


def _write_export(path, users=40, events=40, *, ms=False):
    """A realistic export: BOM, CRLF, columns reordered, an extra column, e-mail ids, labels to slug,
    fractional timestamps, and five malformed rows at the end."""
    labels = ("Children's", "Arts & Crafts", "Comédie", "Sci-Fi")
    lines = ["timestamp,session,categories,item_id,user_id,type"]
    for u in range(users):
        label = labels[u % len(labels)]
        for i in range(events):
            ts = 1_600_000_000.25 + i * 600 + u
            stamp = f"{ts * 1000:.0f}" if ms else f"{ts:.2f}"
            lines.append(f'{stamp},s{u},{label},"{i} Title, The",user.{u}+x@example.com,{"click" if i % 5 else ""}')
    lines += [
        "1600000000,s1,news",  # too few fields
        "yesterday,s1,news,1,user.1+x@example.com,page_view",
        "1600000000,s1,news,1,,page_view",
        "1600000000,s1,news,1,user.1+x@example.com,hover",
        "1600000000,s1,news,1,user 1,page_view",
    ]
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))


def test_a_messy_export_is_read_by_column_name_with_malformed_rows_counted(tmp_path, capsys):
    path = tmp_path / "export.csv"
    _write_export(path)
    out = tmp_path / "report.json"
    call_command("evaluate_interests", "--events", str(path), "--split", "user", "--models", "prior", "--json", str(out))
    report = json.loads(out.read_text())
    assert report["test_users"] == 40
    assert set(report["results"]) == {"prior", "popularity", "frequency", "recent", "decayed"}
    err = capsys.readouterr().err
    assert "left out 5 malformed rows" in err
    assert "invalid_ts: 1" in err and "invalid_user_id: 2" in err and "invalid_event_type: 1" in err
    assert "ignored columns: session" in err


def test_millisecond_timestamps_read_as_the_same_instants(tmp_path):
    seconds, millis = tmp_path / "s.csv", tmp_path / "ms.csv"
    _write_export(seconds, users=2, events=6)
    _write_export(millis, users=2, events=6, ms=True)
    report_s, report_ms = ReadReport(), ReadReport()
    in_seconds = events_read_generic(seconds, report=report_s)
    in_millis = events_read_generic(millis, report=report_ms)
    assert [round(e.ts, 3) for e in in_millis] == [round(e.ts, 3) for e in in_seconds]
    assert in_seconds[0].categories in {("childrens",), ("arts-crafts",)}
    assert in_seconds[0].item_id == "0 Title, The"
    assert report_ms.ms_timestamps == 12 and report_s.ms_timestamps == 0


def test_without_a_report_a_malformed_row_is_an_error(tmp_path):
    path = tmp_path / "export.csv"
    _write_export(path, users=1, events=3)
    with pytest.raises(ValueError, match="line 5: 3 columns"):
        events_read_generic(path)


def test_no_test_users_is_a_clear_error_not_a_table_of_nan(tmp_path):
    path = tmp_path / "few.csv"
    _write_loyal_csv(path, users=5, events=3)
    with pytest.raises(CommandError, match="no test users: the time split"):
        call_command("evaluate_interests", "--events", str(path), "--models", "prior")


def test_a_file_without_the_columns_is_a_command_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("user,item,when\nu1,i1,1600000000\n")
    with pytest.raises(CommandError, match=r"missing columns \['user_id', 'item_id', 'categories', 'timestamp'\]"):
        call_command("evaluate_interests", "--events", str(path), "--models", "prior")


def test_few_test_users_get_a_warning_before_the_table(tmp_path):
    path = tmp_path / "small.csv"
    _write_loyal_csv(path, users=12, events=40)
    out, err = io.StringIO(), io.StringIO()
    call_command("evaluate_interests", "--events", str(path), "--models", "prior", stdout=out, stderr=err)
    assert "warning: only 12 test users" in err.getvalue()
    assert "12 test users" in out.getvalue()  # and the table still comes


def test_hyperparameters_override_a_model_for_an_ablation(tmp_path):
    path = tmp_path / "events.csv"
    _write_loyal_csv(path, users=40, events=40)
    out = tmp_path / "report.json"
    call_command(
        "evaluate_interests", "--events", str(path), "--split", "user", "--models", "gbdt",
        "--hyperparameters", '{"gbdt": {"num_leaves": 3, "max_rounds": 5, "objective": "binary"}}',
        "--json", str(out),
    )  # fmt: skip
    used = json.loads(out.read_text())["results"]["gbdt"]["hyperparameters"]
    assert (used["num_leaves"], used["max_rounds"], used["objective"]) == (3, 5, "binary")
    with pytest.raises(CommandError, match="hyperparameters"):
        call_command("evaluate_interests", "--events", str(path), "--hyperparameters", "[1]")


def test_the_edge_ranker_is_reported_beside_its_teacher(tmp_path):
    """``--models gbdt,edge``: the edge model distilled from the gbdt trained here, measured on the same
    test users (its NDCG@5 beside the teacher's, its probabilities' calibration, its agreement)."""
    path = tmp_path / "events.csv"
    _write_loyal_csv(path)
    out = tmp_path / "report.json"
    call_command(
        "evaluate_interests", "--events", str(path), "--split", "user", "--models", "gbdt,edge", "--json", str(out)
    )
    report = json.loads(out.read_text())
    edge, gbdt = report["results"]["edge"], report["results"]["gbdt"]
    # loyal readers: both rankers find each one's own section, the student as well as its teacher
    assert edge["ndcg@5"] > report["results"]["popularity"]["ndcg@5"]
    assert edge["ndcg@5"] >= gbdt["ndcg@5"] - 0.05
    assert edge["training"]["teacher"]["algorithm"] == "gbdt"
    assert 0 <= edge["training"]["validation_agreement"]["ndcg@5_vs_teacher"] <= 1
    assert edge["calibration"]["ece"] is not None


def test_an_unknown_model_is_a_command_error(tmp_path):
    path = tmp_path / "events.csv"
    _write_loyal_csv(path, users=4, events=10)
    with pytest.raises(CommandError, match="unknown models"):
        call_command("evaluate_interests", "--events", str(path), "--models", "edge:prior")

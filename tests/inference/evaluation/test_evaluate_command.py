"""``manage.py evaluate_interests`` on a generic events CSV: the JSON report's promised shape."""

from __future__ import annotations

import csv
import json

from django.core.management import call_command

from inference.evaluation.reading import events_read_generic


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

"""Every dashboard page renders the seeded data, with a bounded number of queries."""

from __future__ import annotations

import pytest

from tests.dashboard.conftest import VISITOR

pytestmark = pytest.mark.django_db


def test_overview_shows_traffic_from_the_rollup(staff_client, seeded):
    response = staff_client.get("/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Overview" in html and "chart.umd.min.js" in html
    figures = staff_client.get("/dashboard/overview.json?window=day").json()
    assert figures["events_by_type"]["page_view"] == 17
    assert figures["impressions_viewable"] == 1 and figures["clicks"] == 1
    assert figures["ctr"] is None  # the one CTR is clicks / served impressions: none served here
    assert figures["bots_by_type"] == {"page_view": 1}
    assert sum(figures["quarantined_by_reason"].values()) == 2


def test_models_page_lists_versions_with_metrics_and_baselines(staff_client, seeded):
    html = staff_client.get("/dashboard/models/").content.decode()
    assert seeded["old"] in html and seeded["new"] in html
    assert "0.81" in html and "frequency: 0.78" in html
    assert "Train now" in html


def test_models_page_says_which_ranker_serves_and_why(staff_client):
    from inference.registry import services as registry

    registry.model_version_register(
        algorithm="gbdt",
        version="gbdt-below",
        artifact_path="x",
        metrics={"decision": "ndcg@5 0.3100 < best baseline decayed 0.3300: registered, not served"},
    )
    registry.model_version_register(
        algorithm="decayed",
        version="decayed-best",
        artifact_path="y",
        metrics={"decision": "best baseline on the slice: decayed ndcg@5 0.3300 (vs frequency 0.3100)"},
    )
    registry.model_version_activate(version="decayed-best")
    html = staff_client.get("/dashboard/models/").content.decode()
    assert "Answers come from <strong>decayed</strong>: best baseline on the slice: decayed" in html
    assert "0.3100 &lt; best baseline decayed 0.3300: registered, not served" in html  # gbdt's row


def test_models_page_names_the_ranker_that_validated_best_as_the_one_serving(staff_client):
    """Taobao's case: LightGBM 0.345 against the network's 0.342 on the same slice."""
    from inference.registry import services as registry

    for algorithm, score in (("neural", 0.342), ("gbdt", 0.345), ("decayed", 0.333)):
        registry.model_version_register(
            algorithm=algorithm,
            version=f"{algorithm}-1",
            artifact_path=algorithm,
            metrics={
                "results": {"model": {"ndcg@5": score}},
                "decision": f"ndcg@5 {score:.4f} >= best baseline decayed 0.3330",
            },
        )
        registry.model_version_activate(version=f"{algorithm}-1")
    html = staff_client.get("/dashboard/models/").content.decode()
    assert "Answers come from <strong>gbdt</strong>: ndcg@5 0.3450 &gt;= best baseline decayed 0.3330" in html
    assert '<span id="serving-order">gbdt 0.3450, neural 0.3420, decayed 0.3330</span>' in html


def test_models_page_shows_the_blend_first_when_it_validated_best_and_says_why_it_stopped(staff_client):
    from inference.registry import services as registry

    for algorithm, score in (("neural", 0.3104), ("gbdt", 0.3081), ("blend", 0.3158)):
        registry.model_version_register(
            algorithm=algorithm,
            version=f"{algorithm}-1",
            artifact_path=algorithm,
            hyperparameters={"member_versions": {"neural": "neural-1", "gbdt": "gbdt-1"}} if algorithm == "blend" else {},
            metrics={"results": {"model": {"ndcg@5": score}}, "decision": f"ndcg@5 {score:.4f} >= best baseline"},
        )
        registry.model_version_activate(version=f"{algorithm}-1")
    html = staff_client.get("/dashboard/models/").content.decode()
    assert "Answers come from <strong>blend</strong>: ndcg@5 0.3158 &gt;= best baseline" in html
    assert '<span id="serving-order">blend 0.3158, neural 0.3104, gbdt 0.3081</span>' in html
    # a new network version serves: the blend of the old one stops, and the page says why
    registry.model_version_register(algorithm="neural", version="neural-2", artifact_path="n2")
    registry.model_version_activate(version="neural-2")
    html = staff_client.get("/dashboard/models/").content.decode()
    assert "blend 0.3158" not in html
    assert "neural serves neural-2 now, not the blend&#x27;s neural-1" in html


def test_compare_page_puts_two_versions_side_by_side(staff_client, seeded):
    response = staff_client.get(f"/dashboard/models/compare?v={seeded['old']}&v={seeded['new']}")
    html = response.content.decode()
    assert response.status_code == 200
    assert "compare-chart" in html and "0.83" in html and "0.81" in html


def test_compare_page_charts_per_category_scores_with_a_table_fallback(staff_client, seeded):
    from adsite.dashboard.selectors.models import models_compare

    comparison = models_compare(a=seeded["old"], b=seeded["new"])
    assert comparison is not None
    pc = comparison["per_category"]
    # A's categories by engaged users, then B's own; a category one version has no figure for is None
    assert [r["category"] for r in pc["rows"]] == ["technology", "travel", "sports", "food"]
    assert pc["chart"]["datasets"][0]["data"] == [0.93, 0.77, 0.44, None]
    assert pc["chart"]["datasets"][1]["data"] == [0.9, 0.85, None, 0.5]
    assert pc["missing"] == []
    html = staff_client.get(f"/dashboard/models/compare?a={seeded['old']}&b={seeded['new']}").content.decode()
    assert 'id="chart-per-category"' in html and "per-category-chart" in html
    # the table reads without JavaScript
    assert (
        '<th scope="row">sports</th><td class="num">9</td><td class="num">0.44</td><td class="num">–</td>'
        in html
    )


def test_compare_page_says_when_a_version_has_no_per_category_figures(staff_client, seeded):
    from inference.registry import services as registry

    registry.model_version_register(
        algorithm="gbdt", version="gbdt-seed-bare", artifact_path="x", metrics={"results": {"model": {}}}
    )
    html = staff_client.get(f"/dashboard/models/compare?a=gbdt-seed-bare&b={seeded['new']}").content.decode()
    assert "Not recorded for <code>gbdt-seed-bare</code>" in html
    assert 'id="chart-per-category"' in html  # B's figures are still charted


def test_visitor_page_shows_profile_prediction_and_events(staff_client, seeded):
    html = staff_client.get(f"/dashboard/visitors/?user_id={VISITOR}").content.decode()
    assert "technology" in html and "sports" in html  # profile and events
    assert "Served by" in html
    assert "i11" in html  # the latest event's item


@pytest.mark.parametrize("user_id", ["a/b", "two words"])
def test_visitor_page_refuses_an_id_no_visitor_can_have(staff_client, user_id):
    """An id outside the site's user id rule (a '/' broke the page's delete link: a 500) is a form error."""
    response = staff_client.get("/dashboard/visitors/", {"user_id": user_id})
    assert response.status_code == 200
    html = response.content.decode()
    assert "without whitespace, control characters or" in html
    assert 'id="delete-visitor"' not in html


def test_quality_page_shows_quarantine_with_raw_payloads(staff_client, seeded):
    html = staff_client.get("/dashboard/quality/").content.decode()
    assert "not-a-uuid" in html
    assert "no_such_type" in html
    assert "Bot share" in html


def test_audit_page_renders(staff_client, seeded):
    assert staff_client.get("/dashboard/audit/").status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/dashboard/",
        "/dashboard/overview.json?window=day",
        "/dashboard/models/",
        "/dashboard/models/compare?a=gbdt-seed-old&b=gbdt-seed-new",
        f"/dashboard/visitors/?user_id={VISITOR}",
        "/dashboard/quality/",
        "/dashboard/audit/",
        "/dashboard/models/training.json",
    ],
)
def test_query_count_is_bounded_and_independent_of_data_size(
    staff_client, seeded, url, django_assert_max_num_queries
):
    from tests.dashboard.conftest import ingest, make_event

    staff_client.get(url)  # warm: the first view may take a rollup snapshot
    with django_assert_max_num_queries(20):
        assert staff_client.get(url).status_code == 200
    ingest([make_event(item_id=f"more{i}") for i in range(50)])
    with django_assert_max_num_queries(20):
        assert staff_client.get(url).status_code == 200


def test_models_page_shows_where_each_version_was_trained(staff_client):
    """The registry keeps the engine facts of a run (manage.py train --engine dask --json's form)."""
    from inference.registry import services as registry

    registry.model_version_register(
        algorithm="neural",
        version="neural-dask",
        artifact_path="n",
        metrics={
            "engine": {
                "engine": "dask",
                "workers": 2,
                "partitions": 8,
                "training_set": {"rows": 12345, "seconds": 41.2},
                "neural": {"engine": "torch.distributed", "world_size": 2, "seconds": 95.04},
            }
        },
    )
    registry.model_version_register(
        algorithm="gbdt",
        version="gbdt-local",
        artifact_path="g",
        metrics={"engine": {"engine": "local", "training_set": {"rows": 900, "seconds": 3.0},
                            "gbdt": {"engine": "lightgbm", "workers": 1, "seconds": 7.5}}},
    )
    html = staff_client.get("/dashboard/models/").content.decode()
    assert "dask: 2 workers, 8 partitions; training set 12,345 rows in 41.2 s; torch.distributed x2 95.0 s" in html
    assert "local; training set 900 rows in 3.0 s; lightgbm x1 7.5 s" in html

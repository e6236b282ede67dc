"""The edge model: distilled from a served model's calibrated probabilities, exported as a small file."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from inference.models import model_fit, model_load
from inference.models.edge import EDGE_FORMAT, edge_agreement, edge_model_distill
from inference.models.training import training_samples
from tests.inference.models.test_models import CATEGORIES, SMALL, favourite_stream


@pytest.fixture(scope="module")
def distilled():
    stream = favourite_stream(users=120, events=40)
    data = training_samples(stream, categories=CATEGORIES, horizon=10, validation="user")
    teacher = model_fit(algorithm="gbdt", data=data, categories=CATEGORIES, hyperparameters=SMALL["gbdt"])
    return teacher, edge_model_distill(teacher, data, version="edge-test-1"), data


def test_the_edge_model_follows_its_teachers_ranking_on_the_validation_slice(distilled):
    teacher, student, data = distilled
    agreement = student.training["validation_agreement"]
    assert agreement == edge_agreement(student, teacher, data.validation)
    assert agreement["ndcg@5_vs_teacher"] > 0.95
    assert agreement["top5_overlap"] > 0.8


def test_the_edge_models_probabilities_are_close_to_the_teachers(distilled):
    teacher, student, data = distilled
    gaps = []
    for sample in data.validation:
        if sample.candidates.size:
            gaps.append(
                np.abs(
                    student.calibration.probabilities(student.score(sample))
                    - teacher.calibration.probabilities(teacher.score(sample))
                ).mean()
            )
    assert float(np.mean(gaps)) < 0.05


def test_the_exported_file_is_small_versioned_and_loads_back(distilled, tmp_path):
    _, student, _ = distilled
    exported = student.export()
    assert exported["format"] == EDGE_FORMAT and exported["version"] == "edge-test-1"
    assert exported["teacher"]["algorithm"] == "gbdt"
    assert len(gzip.compress(json.dumps(exported, separators=(",", ":")).encode())) < 2_000
    student.save(tmp_path)
    assert json.loads((tmp_path / "edge-model.json").read_text()) == json.loads(json.dumps(exported))
    loaded = model_load(tmp_path)
    assert np.allclose(loaded.weights, student.weights) and loaded.bias == student.bias


@pytest.mark.django_db
def test_the_export_command_writes_the_file_the_site_serves(tmp_path, settings, client):
    from django.core.management import call_command

    from tests.inference.models.test_models import SMALL as small

    stream = favourite_stream(users=80, events=30)
    csv = tmp_path / "events.csv"
    csv.write_text(
        "user_id,item_id,categories,timestamp,type\n"
        + "".join(f"{e.user_id},{e.item_id},{e.categories[0]},{e.ts:.3f},{e.type}\n" for e in stream)
    )
    teacher = model_fit(
        algorithm="gbdt",
        data=training_samples(stream, categories=CATEGORIES, horizon=10, validation="time"),
        categories=CATEGORIES,
        hyperparameters=small["gbdt"],
    )
    teacher.save(tmp_path / "gbdt-7")
    settings.INFERENCE = {**getattr(settings, "INFERENCE", {}), "MODEL_DIR": str(tmp_path / "models")}
    assert client.get("/edge/model.json").status_code == 404  # nothing exported yet: said, not a 500
    call_command("edge_model_export", teacher=str(tmp_path / "gbdt-7"), events=str(csv))
    response = client.get("/edge/model.json")
    assert response.status_code == 200
    body = json.loads(b"".join(response.streaming_content))
    assert body["format"] == EDGE_FORMAT and body["teacher"] == {"algorithm": "gbdt", "version": "gbdt-7"}
    assert set(body["popularity"]) == set(CATEGORIES)
    assert client.get("/edge/model.json", HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304

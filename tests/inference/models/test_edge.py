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

"""Registry tables: model versions, their activation audit, and training runs."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class ModelVersion(models.Model):
    class Algorithm(models.TextChoices):
        NEURAL = "neural"
        GBDT = "gbdt"
        # the mean of the active neural and gbdt versions' probabilities (inference.models.blend), built by
        # training runs; its ``hyperparameters["member_versions"]`` names the versions it holds
        BLEND = "blend"
        # the evaluation's baselines as servable rankers (inference.models.baselines): registered by
        # every training run; the best one on the validation slice is kept active
        DECAYED = "decayed"
        FREQUENCY = "frequency"
        RECENT = "recent"
        POPULARITY = "popularity"

    class Status(models.TextChoices):
        CANDIDATE = "candidate"
        ACTIVE = "active"
        RETIRED = "retired"

    # e.g. "gbdt-20261128-1530-ab12": algorithm, UTC training time, random suffix (two runs a minute)
    version = models.CharField(max_length=64, unique=True)
    algorithm = models.CharField(max_length=16, choices=Algorithm.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    # relative to INFERENCE["MODEL_DIR"], so the storage can move (shared storage when scaled out)
    artifact_path = models.CharField(max_length=255)
    hyperparameters = models.JSONField(default=dict)
    # the event time window the model was trained on
    data_from = models.DateTimeField(null=True, blank=True)
    data_to = models.DateTimeField(null=True, blank=True)
    feature_schema_version = models.CharField(max_length=32, blank=True)
    # {"slice": {...}, "results": {"model": {"ndcg@5":..}, "popularity": {..}, ...}} on a later held-out slice
    metrics = models.JSONField(default=dict)
    training_seconds = models.FloatField(default=0.0)
    # NDCG@5 on the validation slice of the latest training run that judged this version (its own run's
    # at registration; a later run re-scores the active versions on its slice): the chain tries the
    # active versions best first (``inference.serving.slots.serving_order``); None: never scored
    validation_score = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # one serving version per algorithm, enforced by the database, not by convention
            models.UniqueConstraint(
                fields=["algorithm"], condition=Q(status="active"), name="registry_one_active_per_algorithm"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} ({self.status})"


class ModelActivation(models.Model):
    """Audit of every change of the serving version; rollback follows ``previous``."""

    class Action(models.TextChoices):
        ACTIVATE = "activate"
        ROLLBACK = "rollback"
        RETIRE = "retire"

    algorithm = models.CharField(max_length=16)
    action = models.CharField(max_length=16, choices=Action.choices)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="activations")
    # the version that was active before this change (None for the first activation)
    previous = models.ForeignKey(
        ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor = models.CharField(max_length=150, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.version_id} at {self.at:%Y-%m-%d %H:%M}"


class TrainingRun(models.Model):
    """One training run, with its progress for the dashboard (updated by the pipeline as it goes)."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"  # another run held the lock

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    stage = models.CharField(max_length=64, blank=True)
    percent = models.FloatField(default=0.0)
    message = models.CharField(max_length=255, blank=True)
    options = models.JSONField(default=dict)
    # versions registered by this run and whether each was activated
    outcome = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"training run {self.pk} ({self.status}, {self.stage} {self.percent:.0f}%)"


class ShadowConfig(models.Model):
    """The version that shadows live traffic: it scores a sample of the interest requests that a model
    served, after the answer is computed, and is never served itself. One row (``pk=1``) or none.

    Every web process reads this row on its registry poll (``RELOAD_POLL_SECONDS``), like the active
    versions, and loads and warms the version up beside the serving ones.
    """

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    # share of eligible requests (a model answered) that the shadow also scores, 0 < rate <= 1
    sample_rate = models.FloatField(default=0.1)
    # agreement is the overlap of the two top-k category lists
    top_k = models.PositiveSmallIntegerField(default=5)
    actor = models.CharField(max_length=150, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"shadow {self.version_id} at {self.sample_rate:.0%}, top-{self.top_k}"

"""Celery tasks of the registry: scheduled retraining (``INFERENCE["RETRAIN_SECONDS"]``).

Thin: JSON arguments in, the training service does the work. Safe to run twice: the service holds a
lock, so an overlapping run is recorded as skipped and changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from celery import shared_task


# acks_late off: a broker redelivering a long run past its visibility timeout would start it twice
@shared_task(
    name="inference.train_models", soft_time_limit=2 * 3600, time_limit=2 * 3600 + 300, acks_late=False
)
def train_models(
    algorithm: str = "all",
    since: str | None = None,
    until: str | None = None,
    activate: str = "auto",
    engine: str | None = None,
) -> dict[str, object]:
    """``engine``: ``local`` or ``dask`` (default ``INFERENCE["TRAINING_ENGINE"]``, from the environment
    variable ``INFERENCE_TRAINING_ENGINE``; the scheduler from ``INFERENCE_TRAINING_SCHEDULER``)."""
    from inference.registry.training import training_run_execute

    run = training_run_execute(
        algorithm=algorithm,
        since=datetime.fromisoformat(since) if since else None,
        until=datetime.fromisoformat(until) if until else None,
        activate=activate,
        engine=engine,
    )
    return {"run_id": run.pk, "status": run.status, "outcome": run.outcome}

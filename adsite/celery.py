"""The Celery app. In embedded mode tasks run eagerly in-process (CELERY_TASK_ALWAYS_EAGER)."""
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")

app = Celery("adsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _quiet_repeats(logger: object = None, **kwargs: object) -> None:
    """Celery replaces Django's log handlers: give its handlers the same repeat filter
    (adsite/ops/log_repeats.py), so an outage does not flood the worker's and beat's logs."""
    import logging

    from adsite.ops.log_repeats import handlers_quieted

    if isinstance(logger, logging.Logger):
        handlers_quieted(logger)


@signals.task_postrun.connect
def _query_log_reset(**kwargs: object) -> None:
    """With ``DJANGO_DEBUG=1`` (as ``make run`` serves) Django keeps every query's SQL on its connection,
    up to 9,000 per connection, and only a web request's start resets it, so a worker that flushes the
    buffer every second keeps the last 9,000 (Celery warns about DEBUG for this reason). Reset after
    each task, as Django does after each request. (Not the cause of the pool process's growth in the
    soak: docs/reliability.md.)"""
    from django.conf import settings

    if settings.DEBUG:
        from django.db import reset_queries

        reset_queries()

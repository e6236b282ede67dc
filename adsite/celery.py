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

"""The Celery app. In embedded mode tasks run eagerly in-process (CELERY_TASK_ALWAYS_EAGER)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsite.settings")

app = Celery("adsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

"""adsite: the Django project (settings, URLs, Celery app) and the site's own apps."""
from adsite.celery import app as celery_app

__all__ = ["celery_app"]

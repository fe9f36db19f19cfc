"""The Django project: settings, URLs, ASGI and Celery wiring."""

# Loaded with Django so that @shared_task binds to the studio's app (and its DjangoTask with delay_on_commit).
from studio.celery import app as celery_app

__all__ = ["celery_app"]

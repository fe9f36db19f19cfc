"""The Celery application: every long or external action of the studio runs through it."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import beat_init, worker_ready

from apps.core.heartbeat import start_beating

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

app = Celery("studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _worker_heartbeat(**_: object) -> None:
    start_beating("worker")


@beat_init.connect
def _beat_heartbeat(**_: object) -> None:
    start_beating("beat")

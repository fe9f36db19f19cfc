from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        # The worker's and beat's heartbeats start from Celery's signals (apps/core/heartbeat.py). Connected here,
        # once Django is set up, not when `studio` is imported: the Redis key prefix must be read after the
        # environment that chooses it (a test run sets its own) is in place.
        from celery.signals import beat_init, worker_ready

        from apps.core import heartbeat

        worker_ready.connect(heartbeat.on_worker_ready, weak=False)
        beat_init.connect(heartbeat.on_beat_init, weak=False)

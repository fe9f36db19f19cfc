from __future__ import annotations

from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    name = "apps.endpoints"
    label = "endpoints"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported and bound to the finalized Celery app now, not first inside a service's transaction
        # (where queueing a task would otherwise do both while the transaction holds its locks).
        from apps.endpoints import tasks

        assert tasks.reconcile_deployment.name

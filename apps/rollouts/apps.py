from __future__ import annotations

from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "apps.rollouts"
    label = "rollouts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connected once the registry is ready (the receiver reads models): a running rollout guards the split.
        from apps.endpoints import signals
        from apps.rollouts import receivers

        signals.traffic_changing.connect(receivers.traffic_changing, dispatch_uid="rollouts.traffic_guard")

from __future__ import annotations

from django.apps import AppConfig


class CostsConfig(AppConfig):
    name = "apps.costs"
    label = "costs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported once the app registry is ready (the receivers import models), the way Django connects signals.
        from apps.costs import receivers
        from apps.endpoints import signals

        signals.instances_capacity_changed.connect(receivers.instances_capacity_changed, dispatch_uid="costs.capacity")

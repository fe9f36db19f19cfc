from __future__ import annotations

from django.apps import AppConfig


class ArmConfig(AppConfig):
    name = "apps.arm"
    label = "arm"
    verbose_name = "Azure-shaped API"
    default_auto_field = "django.db.models.BigAutoField"

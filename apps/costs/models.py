"""Prices of instance types, the capacity history that costs are computed from, and autoscale settings."""

from __future__ import annotations

from django.db import models


class InstancePrice(models.Model):
    """What an instance type of the catalog (apps.endpoints' InstanceType, by name) costs an hour.

    By name, as the capacity history records it, so a run keeps its price key whatever happens to the catalog.
    """

    instance_type = models.CharField(max_length=64, unique=True)
    price_per_hour = models.DecimalField(max_digits=10, decimal_places=4)

    class Meta:
        ordering = ["instance_type"]

    def __str__(self) -> str:
        return f"{self.instance_type}: {self.price_per_hour}/h"


class InstanceRun(models.Model):
    """One instance of a deployment from start to stop: the capacity history costs come from.

    Names are copied so a deleted deployment's cost stays on the books.
    """

    deployment = models.ForeignKey(
        "endpoints.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="instance_runs"
    )
    endpoint_name = models.CharField(max_length=32)
    deployment_name = models.CharField(max_length=32)
    instance = models.CharField(max_length=64)
    instance_type = models.CharField(max_length=64)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [
            models.Index(fields=["deployment", "started_at"]),
            models.Index(fields=["endpoint_name", "started_at"]),
            models.Index(fields=["stopped_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint_name}/{self.deployment_name}/{self.instance}"


class AutoscaleSetting(models.Model):
    """A deployment's autoscale, as Azure Monitor holds it: default bounds, metric rules, schedule profiles.

    `rules` and `profiles` are validated lists (apps.costs.autoscale documents their shape); the
    last action and the active profile are remembered for cool-downs and profile switches.
    """

    deployment = models.OneToOneField("endpoints.Deployment", on_delete=models.CASCADE, related_name="autoscale")
    enabled = models.BooleanField(default=True)
    minimum = models.PositiveIntegerField(default=1)
    maximum = models.PositiveIntegerField(default=1)
    default = models.PositiveIntegerField(default=1)
    rules = models.JSONField(default=list, blank=True)
    profiles = models.JSONField(default=list, blank=True)
    last_action_at = models.DateTimeField(null=True, blank=True)
    active_profile = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"autoscale of {self.deployment_id}"

"""The metrics store: request rollups per deployment, mirrored answer pairs, instance CPU and memory."""

from __future__ import annotations

from django.db import models


class Grain(models.IntegerChoices):
    TEN_SECONDS = 10, "10s"
    MINUTE = 60, "1m"
    HOUR = 3600, "1h"


class MetricRollup(models.Model):
    """Requests one deployment finished in one 10-second, minute or hour interval, live or mirrored.

    Names are copied (not foreign keys) so the history of a deleted deployment stays readable.
    The latency histograms use the buckets of apps.monitoring.histogram, so merging rows and reading
    a percentile is exact to the bucket; p50..p99 are kept as columns so long charts need no merging.
    """

    grain = models.PositiveSmallIntegerField(choices=Grain.choices)
    ts = models.DateTimeField(help_text="Start of the interval (UTC).")
    endpoint = models.CharField(max_length=32)
    deployment = models.CharField(max_length=32)
    mirrored = models.BooleanField(default=False)
    requests = models.BigIntegerField(default=0)
    status_2xx = models.BigIntegerField(default=0)
    status_3xx = models.BigIntegerField(default=0)
    status_4xx = models.BigIntegerField(default=0)
    status_5xx = models.BigIntegerField(default=0)
    codes = models.JSONField(default=dict, blank=True)
    model_codes = models.JSONField(default=dict, blank=True)
    latency = models.JSONField(default=dict, blank=True, help_text="Sparse histogram {bucket: count} (ms).")
    upstream_latency = models.JSONField(default=dict, blank=True)
    p50 = models.FloatField(null=True, blank=True)
    p90 = models.FloatField(null=True, blank=True)
    p95 = models.FloatField(null=True, blank=True)
    p99 = models.FloatField(null=True, blank=True)
    bytes_in = models.BigIntegerField(default=0)
    bytes_out = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "grain", "ts", "deployment", "mirrored"], name="metric_rollup_unique"
            )
        ]
        indexes = [
            models.Index(fields=["grain", "ts"]),
            # Covers what charts read, so a long chart never visits the wide rows (histograms) themselves.
            models.Index(
                fields=[
                    "endpoint",
                    "grain",
                    "mirrored",
                    "ts",
                    "deployment",
                    "p50",
                    "p90",
                    "p95",
                    "p99",
                    "requests",
                    "status_2xx",
                    "status_3xx",
                    "status_4xx",
                    "status_5xx",
                ],
                name="metric_rollup_chart",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.endpoint}/{self.deployment} {self.ts:%Y-%m-%d %H:%M:%S} /{self.grain}s"


class MirrorPair(models.Model):
    """One request answered by the live deployment and by the deployment it was mirrored to."""

    ts = models.DateTimeField()
    endpoint = models.CharField(max_length=32)
    deployment = models.CharField(max_length=32, help_text="The deployment that got the mirrored copy.")
    live_deployment = models.CharField(max_length=32)
    request_id = models.CharField(max_length=100, blank=True)
    live_status = models.PositiveSmallIntegerField()
    shadow_status = models.PositiveSmallIntegerField()
    live_body = models.TextField(blank=True)
    shadow_body = models.TextField(blank=True)

    class Meta:
        ordering = ["ts", "id"]
        indexes = [models.Index(fields=["endpoint", "deployment", "ts"]), models.Index(fields=["ts"])]

    def __str__(self) -> str:
        return f"{self.endpoint}/{self.deployment} vs {self.live_deployment} {self.request_id}"


class InstanceSample(models.Model):
    """CPU, memory and disk of one instance at one moment, as the backend measured them."""

    ts = models.DateTimeField()
    endpoint = models.CharField(max_length=32)
    deployment = models.CharField(max_length=32)
    instance = models.CharField(max_length=64)
    pid = models.PositiveIntegerField(null=True, blank=True)
    cpu_seconds = models.FloatField(default=0, help_text="Cumulative CPU time of the process tree.")
    cpu_percent = models.FloatField(null=True, blank=True, help_text="Of the instance type's vCPUs.")
    memory_bytes = models.BigIntegerField(default=0)
    memory_percent = models.FloatField(null=True, blank=True, help_text="Of the instance type's memory.")
    disk_bytes = models.BigIntegerField(null=True, blank=True, help_text="What the instance's folder holds.")

    class Meta:
        ordering = ["ts", "id"]
        indexes = [models.Index(fields=["endpoint", "deployment", "ts"]), models.Index(fields=["ts"])]

    def __str__(self) -> str:
        return f"{self.endpoint}/{self.deployment}/{self.instance} {self.ts:%H:%M:%S}"

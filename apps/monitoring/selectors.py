"""Reads of the metrics store: series for a window under the metric names of Azure Monitor, and
window summaries (merged histograms, so percentiles stay exact to the bucket)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Avg
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.monitoring import histogram
from apps.monitoring.models import Grain, InstanceSample, MetricRollup

LATENCY_METRICS = {
    "RequestLatency_P50": "p50",
    "RequestLatency_P90": "p90",
    "RequestLatency_P95": "p95",
    "RequestLatency_P99": "p99",
}
INSTANCE_METRICS = {"CpuUtilizationPercentage": "cpu_percent", "CpuMemoryUtilizationPercentage": "memory_percent"}
METRICS = (*LATENCY_METRICS, "RequestsPerMinute", *INSTANCE_METRICS)
GRAINS = {"10s": Grain.TEN_SECONDS, "1m": Grain.MINUTE, "1h": Grain.HOUR}
# Charts keep to a few thousand points per line: 10 s up to 6 hours, minutes up to 7 days, hours beyond.
CHART_GRAINS = ((timedelta(hours=6), Grain.TEN_SECONDS), (timedelta(days=7), Grain.MINUTE))


def grain_parse(value: str | None) -> int:
    """`10s`, `1m` (the default) or `1h` as seconds; anything else is the caller's mistake."""
    if value in (None, ""):
        return int(Grain.MINUTE)
    if value not in GRAINS:
        raise ApplicationError(f"grain: expected 10s, 1m or 1h, got {value!r}", field="grain")
    return int(GRAINS[value])


def grain_for_window(*, start: datetime, now: datetime | None = None) -> int:
    """The finest grain still kept for a window starting at `start`."""
    now = now or timezone.now()
    if start >= now - timedelta(hours=settings.STUDIO_METRICS_10S_RETENTION_HOURS):
        return int(Grain.TEN_SECONDS)
    if start >= now - timedelta(days=settings.STUDIO_METRICS_MINUTE_RETENTION_DAYS):
        return int(Grain.MINUTE)
    return int(Grain.HOUR)


def chart_grain(*, start: datetime, end: datetime, now: datetime | None = None) -> int:
    """The grain a chart of [start, end) is drawn at: fine enough to read, never finer than what is kept."""
    wanted = int(Grain.HOUR)
    for span, grain in CHART_GRAINS:
        if end - start <= span:
            wanted = int(grain)
            break
    return max(wanted, grain_for_window(start=start, now=now))


def _rollups(
    *, endpoint: str, start: datetime, end: datetime, grain: int, deployments: list[str] | None, mirrored: bool | None
) -> Any:
    rows = MetricRollup.objects.filter(endpoint=endpoint, grain=grain, ts__gte=start, ts__lt=end)
    if deployments:
        rows = rows.filter(deployment__in=deployments)
    if mirrored is not None:
        # IN, not =: Django writes `= false` as `NOT mirrored`, which no index can serve.
        rows = rows.filter(mirrored__in=[mirrored])
    return rows


def metric_series(
    *,
    endpoint: str,
    metric: str,
    start: datetime,
    end: datetime,
    grain: int = Grain.MINUTE,
    deployments: list[str] | None = None,
    mirrored: bool | None = False,
) -> list[dict[str, Any]]:
    """Time series of one metric for an endpoint, one per deployment (and status class / instance).

    Each series is {"dimensions": {...}, "timestamps": [...], "values": [...]}, points only where
    something happened. RequestsPerMinute is split by deployment and statusCodeClass; latency by
    deployment; CPU and memory by deployment and instanceId.
    """
    if metric not in METRICS:
        raise ApplicationError(f"metric: unknown metric {metric!r}; known: {', '.join(METRICS)}", field="metric")
    if end <= start:
        raise ApplicationError("end: must be after start", field="end")
    if metric in INSTANCE_METRICS:
        return _instance_series(
            endpoint=endpoint, column=INSTANCE_METRICS[metric], start=start, end=end, deployments=deployments
        )
    rows = _rollups(endpoint=endpoint, start=start, end=end, grain=grain, deployments=deployments, mirrored=mirrored)
    series: dict[tuple[str, ...], dict[str, Any]] = {}

    def add(key: tuple[str, ...], dimensions: dict[str, str], ts: datetime, value: float | None) -> None:
        entry = series.setdefault(key, {"dimensions": dimensions, "timestamps": [], "values": []})
        entry["timestamps"].append(ts)
        entry["values"].append(value)

    if metric in LATENCY_METRICS:
        column = LATENCY_METRICS[metric]
        if mirrored is None:
            # Live and mirrored rows of one interval must be merged to stay exact: read the histograms.
            return _merged_latency_series(rows=rows, q=float(column[1:]))
        for deployment, ts, value in rows.order_by("ts").values_list("deployment", "ts", column).iterator(5000):
            add((deployment,), {"deployment": deployment}, ts, value)
    else:
        scale = 60 / grain  # per minute, whatever the grain
        fields = ("deployment", "ts", "status_2xx", "status_3xx", "status_4xx", "status_5xx", "requests")
        for deployment, ts, s2, s3, s4, s5, total in rows.order_by("ts").values_list(*fields).iterator(5000):
            other = total - s2 - s3 - s4 - s5
            for status_class, count in (("2xx", s2), ("3xx", s3), ("4xx", s4), ("5xx", s5), ("other", other)):
                if count:
                    dims = {"deployment": deployment, "statusCodeClass": status_class}
                    add((deployment, status_class), dims, ts, count * scale)
    return [series[key] for key in sorted(series)]


def _merged_latency_series(*, rows: Any, q: float) -> list[dict[str, Any]]:
    merged: dict[tuple[str, datetime], dict[int, int]] = {}
    for deployment, ts, latency in rows.order_by("ts").values_list("deployment", "ts", "latency"):
        histogram.merge(merged.setdefault((deployment, ts), {}), latency)
    series: dict[str, dict[str, Any]] = {}
    for (deployment, ts), hist in merged.items():
        entry = series.setdefault(
            deployment, {"dimensions": {"deployment": deployment}, "timestamps": [], "values": []}
        )
        entry["timestamps"].append(ts)
        entry["values"].append(histogram.percentile(hist, q))
    return [series[key] for key in sorted(series)]


def _instance_series(
    *, endpoint: str, column: str, start: datetime, end: datetime, deployments: list[str] | None
) -> list[dict[str, Any]]:
    rows = InstanceSample.objects.filter(endpoint=endpoint, ts__gte=start, ts__lt=end, **{f"{column}__isnull": False})
    if deployments:
        rows = rows.filter(deployment__in=deployments)
    series: dict[tuple[str, str], dict[str, Any]] = {}
    for deployment, instance, ts, value in rows.order_by("ts").values_list("deployment", "instance", "ts", column):
        dims = {"deployment": deployment, "instanceId": instance}
        entry = series.setdefault((deployment, instance), {"dimensions": dims, "timestamps": [], "values": []})
        entry["timestamps"].append(ts)
        entry["values"].append(value)
    return [series[key] for key in sorted(series)]


@dataclass
class WindowSummary:
    """One deployment's traffic over a window: counts, rates and exact-to-the-bucket percentiles."""

    deployment: str
    seconds: float
    requests: int = 0
    mirrored_requests: int = 0
    status: dict[str, int] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)  # per status code, e.g. {"200": 98, "424": 2}
    latency: dict[int, int] = field(default_factory=dict)
    bytes_in: int = 0
    bytes_out: int = 0

    def percentile(self, q: float) -> float | None:
        return histogram.percentile(self.latency, q)

    @property
    def errors(self) -> int:
        return self.status.get("4xx", 0) + self.status.get("5xx", 0)

    def view(self) -> dict[str, Any]:
        """The JSON the API and the UI show."""
        total = self.requests
        return {
            "deployment": self.deployment,
            "requests": total,
            "live_requests": total - self.mirrored_requests,
            "mirrored_requests": self.mirrored_requests,
            "requests_per_second": round(total / self.seconds, 3) if self.seconds else None,
            "requests_per_minute": round(60 * total / self.seconds, 3) if self.seconds else None,
            "status": dict(self.status),
            "error_rate": round(self.errors / total, 6) if total else None,
            "server_error_rate": round(self.status.get("5xx", 0) / total, 6) if total else None,
            "latency_ms": {f"p{q}": self.percentile(q) for q in (50, 90, 95, 99)},
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }


def window_summary(
    *,
    endpoint: str,
    deployment: str,
    start: datetime,
    end: datetime,
    mirrored: bool | None = None,
    grain: int | None = None,
) -> WindowSummary:
    """Merge a deployment's rollups over [start, end) (the finest grain kept unless told)."""
    grain = grain or grain_for_window(start=start)
    summary = WindowSummary(deployment=deployment, seconds=(end - start).total_seconds())
    rows = _rollups(endpoint=endpoint, start=start, end=end, grain=grain, deployments=[deployment], mirrored=mirrored)
    fields = (
        "mirrored",
        "requests",
        "status_2xx",
        "status_3xx",
        "status_4xx",
        "status_5xx",
        "codes",
        "latency",
        "bytes_in",
        "bytes_out",
    )
    for is_mirrored, requests, s2, s3, s4, s5, codes, latency, bytes_in, bytes_out in rows.values_list(*fields):
        summary.requests += requests
        if is_mirrored:
            summary.mirrored_requests += requests
        for status_class, count in (("2xx", s2), ("3xx", s3), ("4xx", s4), ("5xx", s5)):
            summary.status[status_class] = summary.status.get(status_class, 0) + count
        for code, count in (codes or {}).items():
            summary.codes[str(code)] = summary.codes.get(str(code), 0) + int(count)
        histogram.merge(summary.latency, latency)
        summary.bytes_in += bytes_in
        summary.bytes_out += bytes_out
    return summary


def requests_by_deployment(
    *, start: datetime, end: datetime, endpoint: str | None = None, endpoints: Collection[str] | None = None
) -> dict[tuple[str, str], dict[str, int]]:
    """Live and mirrored request counts per (endpoint, deployment) over a window (minute rollups), of one
    endpoint, of the named ones (a list page), or of all."""
    from django.db.models import Sum

    rows = MetricRollup.objects.filter(grain=Grain.MINUTE, ts__gte=start, ts__lt=end)
    if endpoint:
        rows = rows.filter(endpoint=endpoint)
    if endpoints is not None:
        rows = rows.filter(endpoint__in=list(endpoints))
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for ep, deployment, is_mirrored, total in rows.values_list("endpoint", "deployment", "mirrored").annotate(
        total=Sum("requests")
    ):
        entry = counts.setdefault((ep, deployment), {"live": 0, "mirrored": 0})
        entry["mirrored" if is_mirrored else "live"] += total or 0
    return counts


def last_request_at(*, endpoint: str, deployment: str) -> datetime | None:
    """When the deployment last finished a request (live or mirrored), to the 10 s while those are kept."""
    for grain in (Grain.TEN_SECONDS, Grain.MINUTE):
        ts = (
            MetricRollup.objects.filter(endpoint=endpoint, deployment=deployment, grain=grain, requests__gt=0)
            .order_by("-ts")
            .values_list("ts", flat=True)
            .first()
        )
        if ts is not None:
            return ts + timedelta(seconds=int(grain))
    return None


def cpu_average(*, endpoint: str, deployment: str, start: datetime, end: datetime) -> float | None:
    """Mean CPU % over the deployment's instances in a window; None without samples."""
    return InstanceSample.objects.filter(
        endpoint=endpoint, deployment=deployment, ts__gte=start, ts__lt=end, cpu_percent__isnull=False
    ).aggregate(value=Avg("cpu_percent"))["value"]


def _iso_text(value: Any) -> str:
    """A timestamp from a plain cursor as ISO 8601 text in UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:  # SQLite's converter: naive, and the studio stores UTC
            return value.isoformat() + "+00:00"
        return (value if value.utcoffset() == timedelta(0) else value.astimezone(UTC)).isoformat()
    return str(value).replace(" ", "T", 1) + "+00:00"


def rollup_columns(
    *,
    endpoint: str,
    start: datetime,
    end: datetime,
    grain: int = Grain.MINUTE,
    deployments: list[str] | None = None,
    mirrored: bool | None = False,
) -> dict[str, dict[str, list[Any]]]:
    """Per deployment, column lists of its rollups in one query: x (ISO 8601 text), p50..p99, requests, 2xx..5xx.

    What charts draw: no histogram is decoded and the rows skip the ORM's per-value conversion (the
    SQL is the queryset's own, run on a plain cursor), so a long chart stays cheap.
    """
    rows = _rollups(endpoint=endpoint, start=start, end=end, grain=grain, deployments=deployments, mirrored=mirrored)
    names = ("x", "p50", "p90", "p95", "p99", "requests", "2xx", "3xx", "4xx", "5xx")
    fields = (
        "deployment",
        "ts",
        "p50",
        "p90",
        "p95",
        "p99",
        "requests",
        "status_2xx",
        "status_3xx",
        "status_4xx",
        "status_5xx",
    )
    sql, params = rows.order_by("ts").values_list(*fields).query.sql_with_params()
    columns: dict[str, dict[str, list[Any]]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for deployment, ts, *values in cursor.fetchall():
            column = columns.get(deployment)
            if column is None:
                column = columns[deployment] = {name: [] for name in names}
            column["x"].append(_iso_text(ts))
            for name, value in zip(names[1:], values, strict=True):
                column[name].append(value)
    return columns


def usage_columns(*, endpoint: str, start: datetime, end: datetime, grain: int) -> dict[str, dict[str, list[Any]]]:
    """Per deployment, the mean over its instances of CPU %, memory % and disk MiB in each `grain`-second
    bucket of [start, end): x (ISO 8601 text), cpu_percent, memory_percent, disk_mib."""
    rows = InstanceSample.objects.filter(endpoint=endpoint, ts__gte=start, ts__lt=end).order_by("ts")
    sums: dict[str, dict[datetime, list[list[float]]]] = {}
    fields = ("deployment", "ts", "cpu_percent", "memory_percent", "disk_bytes")
    for deployment, ts, *values in rows.values_list(*fields).iterator(5000):
        epoch = int(ts.timestamp()) // grain * grain
        bucket = sums.setdefault(deployment, {}).setdefault(datetime.fromtimestamp(epoch, UTC), [[], [], []])
        for index, value in enumerate(values):
            if value is not None:
                bucket[index].append(float(value) / (1024 * 1024) if index == 2 else float(value))
    columns: dict[str, dict[str, list[Any]]] = {}
    for deployment, buckets in sums.items():
        column = columns[deployment] = {"x": [], "cpu_percent": [], "memory_percent": [], "disk_mib": []}
        for ts in sorted(buckets):
            column["x"].append(ts.isoformat())
            for name, values in zip(("cpu_percent", "memory_percent", "disk_mib"), buckets[ts], strict=True):
                column[name].append(round(sum(values) / len(values), 2) if values else None)
    return columns


def group_columns(
    *,
    endpoint: str,
    groups: dict[str, list[str]],
    start: datetime,
    end: datetime,
    grain: int,
    error_codes: Collection[str] = (),
) -> dict[str, dict[str, list[Any]]]:
    """Per group of deployments (label → names), its live answers merged per `grain`-second bucket of [start, end):
    x (ISO 8601 text), requests, errors (5xx and the `error_codes`), p99 (ms, from the merged histograms)."""
    owner = {name: label for label, names in groups.items() for name in names}
    rows = _rollups(endpoint=endpoint, start=start, end=end, grain=grain, deployments=list(owner), mirrored=False)
    merged: dict[str, dict[datetime, list[Any]]] = {label: {} for label in groups}
    fields = ("deployment", "ts", "requests", "status_5xx", "codes", "latency")
    for deployment, ts, requests, s5, codes, latency in rows.order_by("ts").values_list(*fields).iterator(5000):
        bucket = merged[owner[deployment]].setdefault(ts, [0, 0, {}])
        bucket[0] += requests
        bucket[1] += s5 + sum(int((codes or {}).get(code, 0)) for code in error_codes)
        histogram.merge(bucket[2], latency)
    columns: dict[str, dict[str, list[Any]]] = {}
    for label, buckets in merged.items():
        column = columns[label] = {"x": [], "requests": [], "errors": [], "p99": []}
        for ts in sorted(buckets):
            requests, errors, latency = buckets[ts]
            column["x"].append(_iso_text(ts))
            column["requests"].append(requests)
            column["errors"].append(errors)
            column["p99"].append(histogram.percentile(latency, 99) if requests else None)
    return columns

"""Writes of the metrics store: drain the gateways' records into rollups, keep mirror pairs, sample
instances, prune what is past its retention.

The gateway RPUSHes MetricsRecord JSON onto METRICS_QUEUE; `metrics_ingest` moves a batch to a
processing list, folds it into the 10-second, minute and hour rollups in one transaction, then drops the
processing list. A drain that died half-way is finished by the next one (the batch is still there),
so no record is lost; only a crash between the commit and the final delete could count a batch twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.notify import redis_client
from apps.endpoints.backends import get_backend
from apps.endpoints.backends.base import Backend, BackendUnavailable
from apps.endpoints.models import Deployment
from apps.endpoints.specs import deployment_backend_kind, deployment_spec
from apps.monitoring import histogram
from apps.monitoring.models import Grain, InstanceSample, MetricRollup, MirrorPair
from apps.monitoring.records import METRICS_QUEUE, MIRROR_BODY_LIMIT, MIRROR_PAIRS_QUEUE

logger = logging.getLogger(__name__)

PROCESSING_SUFFIX = ":processing"
LOCK_SUFFIX = ":lock"
BATCH = 5000
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")


@dataclass
class IngestResult:
    """What one drain did: records read, requests counted, rollup rows written, bad records skipped, and
    the endpoints whose figures changed."""

    records: int = 0
    requests: int = 0
    rows: int = 0
    skipped: int = 0
    endpoints: set[str] = field(default_factory=set)


# Moves up to ARGV[1] records from the queue to the processing list in one step, so a crash never drops them.
_MOVE_BATCH = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], #items, -1)
  redis.call('RPUSH', KEYS[2], unpack(items))
end
return items
"""


def _take_batch(queue: str, limit: int) -> list[bytes | str]:
    """Move up to `limit` records to the processing list (or resume the one a dead drain left)."""
    client = redis_client()
    processing = queue + PROCESSING_SUFFIX
    pending = client.lrange(processing, 0, -1)
    if pending:
        return pending
    return client.eval(_MOVE_BATCH, 2, queue, processing, min(limit, 5000))


def _finish_batch(queue: str) -> None:
    redis_client().delete(queue + PROCESSING_SUFFIX)


def _bucket(ts: int, grain: int) -> datetime:
    return datetime.fromtimestamp(ts - ts % grain, tz=UTC)


def _add_counts(into: dict[str, int], other: dict[str, Any]) -> None:
    for key, value in other.items():
        into[str(key)] = into.get(str(key), 0) + int(value)


class _Acc:
    """One rollup row being summed in memory."""

    __slots__ = ("requests", "status", "codes", "model_codes", "latency", "upstream", "bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.requests = 0
        self.status: dict[str, int] = {}
        self.codes: dict[str, int] = {}
        self.model_codes: dict[str, int] = {}
        self.latency: dict[int, int] = {}
        self.upstream: dict[int, int] = {}
        self.bytes_in = 0
        self.bytes_out = 0

    def add(self, record: dict[str, Any]) -> None:
        self.requests += int(record["count"])
        _add_counts(self.status, record.get("status") or {})
        _add_counts(self.codes, record.get("codes") or {})
        _add_counts(self.model_codes, record.get("model_codes") or {})
        histogram.merge(self.latency, record.get("latency") or {})
        histogram.merge(self.upstream, record.get("upstream_latency") or {})
        self.bytes_in += int(record.get("bytes_in") or 0)
        self.bytes_out += int(record.get("bytes_out") or 0)


def _parse(raw: bytes | str) -> dict[str, Any] | None:
    try:
        record = json.loads(raw)
        int(record["ts"]), int(record["count"])
        if not (isinstance(record["endpoint"], str) and isinstance(record["deployment"], str)):
            return None
        return record
    except (ValueError, KeyError, TypeError):
        return None


def _apply(row: MetricRollup, acc: _Acc) -> None:
    row.requests += acc.requests
    status = {key: 0 for key in STATUS_CLASSES}
    _add_counts(status, acc.status)
    row.status_2xx += status["2xx"]
    row.status_3xx += status["3xx"]
    row.status_4xx += status["4xx"]
    row.status_5xx += status["5xx"]
    codes = dict(row.codes)
    _add_counts(codes, acc.codes)
    row.codes = codes
    model_codes = dict(row.model_codes)
    _add_counts(model_codes, acc.model_codes)
    row.model_codes = model_codes
    latency = histogram.merge(histogram.merge({}, row.latency), acc.latency)
    row.latency = {str(k): v for k, v in sorted(latency.items())}
    upstream = histogram.merge(histogram.merge({}, row.upstream_latency), acc.upstream)
    row.upstream_latency = {str(k): v for k, v in sorted(upstream.items())}
    row.p50, row.p90, row.p95, row.p99 = (histogram.percentile(latency, q) for q in (50, 90, 95, 99))
    row.bytes_in += acc.bytes_in
    row.bytes_out += acc.bytes_out


ROLLUP_FIELDS = [
    "requests",
    "status_2xx",
    "status_3xx",
    "status_4xx",
    "status_5xx",
    "codes",
    "model_codes",
    "latency",
    "upstream_latency",
    "p50",
    "p90",
    "p95",
    "p99",
    "bytes_in",
    "bytes_out",
]


@transaction.atomic
def rollups_merge(*, records: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """Fold gateway records into the 10-second, minute and hour rollups; returns (requests, rows written)."""
    accs: dict[tuple[int, datetime, str, str, bool], _Acc] = {}
    requests = 0
    for record in records:
        requests += int(record["count"])
        for grain in (Grain.TEN_SECONDS, Grain.MINUTE, Grain.HOUR):
            key = (
                int(grain),
                _bucket(int(record["ts"]), grain),
                record["endpoint"],
                record["deployment"],
                bool(record.get("mirrored")),
            )
            accs.setdefault(key, _Acc()).add(record)
    if not accs:
        return 0, 0
    existing: dict[tuple[int, datetime, str, str, bool], MetricRollup] = {}
    by_grain: dict[int, set[datetime]] = {}
    for grain_value, ts, *_ in accs:
        by_grain.setdefault(grain_value, set()).add(ts)
    endpoints = {key[2] for key in accs}
    for grain_value, stamps in by_grain.items():
        rows = MetricRollup.objects.select_for_update().filter(grain=grain_value, ts__in=stamps, endpoint__in=endpoints)
        for found in rows:
            existing[(found.grain, found.ts, found.endpoint, found.deployment, found.mirrored)] = found
    created: list[MetricRollup] = []
    updated: list[MetricRollup] = []
    for key, acc in accs.items():
        row = existing.get(key)
        if row is None:
            grain_value, ts, endpoint, deployment, mirrored = key
            row = MetricRollup(grain=grain_value, ts=ts, endpoint=endpoint, deployment=deployment, mirrored=mirrored)
            created.append(row)
        else:
            updated.append(row)
        _apply(row, acc)
    MetricRollup.objects.bulk_create(created, batch_size=500)
    MetricRollup.objects.bulk_update(updated, ROLLUP_FIELDS, batch_size=500)
    return requests, len(created) + len(updated)


def metrics_ingest(*, limit: int = BATCH, max_batches: int = 200, queue: str = METRICS_QUEUE) -> IngestResult:
    """Drain the gateways' metrics list into rollups; one drainer at a time (a Redis lock)."""
    result = IngestResult()
    lock = redis_client().lock(queue + LOCK_SUFFIX, timeout=120, blocking_timeout=0)
    if not lock.acquire(blocking=False):
        return result
    try:
        for _ in range(max_batches):
            batch = _take_batch(queue, limit)
            if not batch:
                break
            records = []
            for raw in batch:
                record = _parse(raw)
                if record is None:
                    result.skipped += 1
                    logger.warning("skipped a malformed metrics record: %.200r", raw)
                else:
                    records.append(record)
            requests, rows = rollups_merge(records=records)
            _finish_batch(queue)
            result.endpoints.update(record["endpoint"] for record in records)
            result.records += len(batch)
            result.requests += requests
            result.rows += rows
            lock.extend(120, replace_ttl=True)
    finally:
        lock.release()
    return result


def _clip(text: Any) -> str:
    data = str(text if text is not None else "").encode("utf-8", "replace")[:MIRROR_BODY_LIMIT]
    return data.decode("utf-8", "ignore")


def mirror_pairs_ingest(*, limit: int = BATCH, queue: str = MIRROR_PAIRS_QUEUE) -> int:
    """Store the sampled live/mirrored answer pairs the gateways pushed; returns how many."""
    stored = 0
    lock = redis_client().lock(queue + LOCK_SUFFIX, timeout=120, blocking_timeout=0)
    if not lock.acquire(blocking=False):
        return 0
    try:
        while batch := _take_batch(queue, limit):
            rows = []
            for raw in batch:
                try:
                    item = json.loads(raw)
                    rows.append(
                        MirrorPair(
                            ts=datetime.fromtimestamp(float(item["ts"]), tz=UTC),
                            endpoint=str(item["endpoint"])[:32],
                            deployment=str(item["deployment"])[:32],
                            live_deployment=str(item["live_deployment"])[:32],
                            request_id=str(item.get("request_id") or "")[:100],
                            live_status=int(item["live_status"]),
                            shadow_status=int(item["shadow_status"]),
                            live_body=_clip(item.get("live_body")),
                            shadow_body=_clip(item.get("shadow_body")),
                        )
                    )
                except (ValueError, KeyError, TypeError):
                    logger.warning("skipped a malformed mirror pair: %.200r", raw)
            MirrorPair.objects.bulk_create(rows, batch_size=500)
            _finish_batch(queue)
            stored += len(rows)
    finally:
        lock.release()
    return stored


def instance_sample_record(
    *,
    endpoint: str,
    deployment: str,
    instance: str,
    pid: int | None,
    cpu_seconds: float,
    memory_bytes: int,
    vcpus: int,
    memory_gib: float,
    at: datetime | None = None,
    cpu_cores: float | None = None,
    disk_bytes: int | None = None,
) -> InstanceSample:
    """Store one CPU/memory reading; CPU % from the CPU time used since the previous reading.

    A backend that reads a current rate instead (Kubernetes' metrics API gives cores in use) passes
    `cpu_cores` and `cpu_seconds=0`.
    """
    at = at or timezone.now()
    if cpu_cores is not None:
        return InstanceSample.objects.create(
            ts=at,
            endpoint=endpoint,
            deployment=deployment,
            instance=instance,
            pid=pid,
            cpu_seconds=0,
            cpu_percent=round(100 * cpu_cores / max(1, vcpus), 2),
            memory_bytes=memory_bytes,
            memory_percent=round(100 * memory_bytes / (memory_gib * 1024**3), 2) if memory_gib else None,
            disk_bytes=disk_bytes,
        )
    previous = (
        InstanceSample.objects.filter(endpoint=endpoint, deployment=deployment, instance=instance)
        .order_by("-ts", "-id")
        .first()
    )
    cpu_percent = None
    if previous is not None and previous.pid == pid and at > previous.ts and cpu_seconds >= previous.cpu_seconds:
        wall = (at - previous.ts).total_seconds()
        cpu_percent = round(100 * (cpu_seconds - previous.cpu_seconds) / (wall * max(1, vcpus)), 2)
    memory_percent = round(100 * memory_bytes / (memory_gib * 1024**3), 2) if memory_gib else None
    return InstanceSample.objects.create(
        ts=at,
        endpoint=endpoint,
        deployment=deployment,
        instance=instance,
        pid=pid,
        cpu_seconds=cpu_seconds,
        cpu_percent=cpu_percent,
        memory_bytes=memory_bytes,
        memory_percent=memory_percent,
        disk_bytes=disk_bytes,
    )


def instances_sample(*, at: datetime | None = None) -> int:
    """Store what every running instance uses now, asking each deployment's backend; returns how many.

    A backend that cannot answer now (a cluster out of reach) ends this round for its deployments with
    a warning; the next round tries again. A backend without readings (no metrics-server) gives none.
    """
    at = at or timezone.now()
    backends: dict[str, Backend | None] = {}
    sampled = 0
    deployments = (
        Deployment.objects.filter(instances__isnull=False)
        .distinct()
        .select_related("endpoint", "environment", "model")
        .prefetch_related("instances")
        .order_by("pk")
    )
    for deployment in deployments:
        kind = deployment_backend_kind(deployment)
        if kind not in backends:
            backends[kind] = get_backend(kind)
        backend = backends[kind]
        if backend is None:
            continue
        spec = deployment_spec(deployment)
        try:
            usage = backend.usage(spec)
        except BackendUnavailable as error:
            logger.warning("instances of %s deployments not sampled this round: %s", kind, error)
            backends[kind] = None
            continue
        for instance in deployment.instances.all():
            reading = usage.get(instance.name)
            if reading is None:  # not running, or too new for the metrics API's first window
                continue
            instance_sample_record(
                endpoint=deployment.endpoint.name,
                deployment=deployment.name,
                instance=instance.name,
                pid=reading.pid,
                cpu_seconds=reading.cpu_seconds or 0.0,
                cpu_cores=reading.cpu_cores,
                memory_bytes=reading.memory_bytes,
                disk_bytes=reading.disk_bytes,
                vcpus=spec.instance_type.vcpus,
                memory_gib=spec.instance_type.memory_gib,
                at=at,
            )
            sampled += 1
    return sampled


def metrics_prune(*, now: datetime | None = None) -> dict[str, int]:
    """Delete rollups, mirror pairs and instance samples older than their retention."""
    now = now or timezone.now()
    deleted = {}
    cutoff_10s = now - timedelta(hours=settings.STUDIO_METRICS_10S_RETENTION_HOURS)
    cutoff_minute = now - timedelta(days=settings.STUDIO_METRICS_MINUTE_RETENTION_DAYS)
    deleted["rollups_10s"] = MetricRollup.objects.filter(grain=Grain.TEN_SECONDS, ts__lt=cutoff_10s).delete()[0]
    deleted["rollups_1m"] = MetricRollup.objects.filter(grain=Grain.MINUTE, ts__lt=cutoff_minute).delete()[0]
    cutoff_hour = now - timedelta(days=settings.STUDIO_METRICS_HOUR_RETENTION_DAYS)
    deleted["rollups_1h"] = MetricRollup.objects.filter(grain=Grain.HOUR, ts__lt=cutoff_hour).delete()[0]
    cutoff_pairs = now - timedelta(days=settings.STUDIO_MIRROR_PAIRS_RETENTION_DAYS)
    deleted["mirror_pairs"] = MirrorPair.objects.filter(ts__lt=cutoff_pairs).delete()[0]
    cutoff_samples = now - timedelta(days=settings.STUDIO_INSTANCE_SAMPLES_RETENTION_DAYS)
    deleted["instance_samples"] = InstanceSample.objects.filter(ts__lt=cutoff_samples).delete()[0]
    return deleted

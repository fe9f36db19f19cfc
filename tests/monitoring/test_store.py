"""The metrics store fed as the gateway feeds it: records on the Redis list, drained into rollups."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from apps.core.notify import redis_client
from apps.monitoring import histogram, selectors, services
from apps.monitoring.models import Grain, MetricRollup
from apps.monitoring.records import METRICS_QUEUE
from tests.monitoring.gateway import Request, aggregate, push

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def generated_load(
    rng: np.random.Generator, *, seconds: int, per_second: int, deployment: str = "blue"
) -> list[Request]:
    """Lognormal latencies (a long right tail, as real services have) with some 4xx and 5xx."""
    requests = []
    for second in range(seconds):
        latencies = rng.lognormal(mean=3.0, sigma=0.8, size=per_second)
        statuses = rng.choice([200, 200, 200, 200, 200, 200, 200, 200, 400, 503], size=per_second)
        for latency, status in zip(latencies, statuses, strict=True):
            ts = T0.timestamp() + second + float(rng.random())
            requests.append(Request(ts=ts, deployment=deployment, latency_ms=float(latency), status=int(status)))
    return requests


def expected_percentile(samples: np.ndarray, q: float) -> float:
    """numpy's nearest-rank percentile, rounded up to its histogram bucket (what 'exact to the bucket' means)."""
    value = float(np.percentile(samples, q, method="inverted_cdf"))
    return histogram.bucket_upper_ms(histogram.bucket_index(value))


def test_window_percentiles_match_numpy_to_the_bucket() -> None:
    rng = np.random.default_rng(7)
    requests = generated_load(rng, seconds=180, per_second=40)
    push(aggregate(requests))

    result = services.metrics_ingest()

    assert result.requests == len(requests) == 7200
    summary = selectors.window_summary(
        endpoint="ep1", deployment="blue", start=T0, end=T0 + timedelta(minutes=3), grain=Grain.MINUTE
    )
    samples = np.array([r.latency_ms for r in requests])
    for q in (50, 90, 95, 99):
        assert summary.percentile(q) == expected_percentile(samples, q)
        assert summary.percentile(q) == pytest.approx(np.percentile(samples, q), rel=0.06)
    # The 10-second and hour rollups merge to the same answer.
    for grain, end in ((Grain.TEN_SECONDS, T0 + timedelta(minutes=3)), (Grain.HOUR, T0 + timedelta(hours=1))):
        other = selectors.window_summary(endpoint="ep1", deployment="blue", start=T0, end=end, grain=grain)
        assert (other.latency, other.requests) == (summary.latency, summary.requests)


def test_minute_series_percentiles_and_status_classes_match_the_samples() -> None:
    rng = np.random.default_rng(11)
    requests = generated_load(rng, seconds=120, per_second=25)
    push(aggregate(requests))
    services.metrics_ingest()

    end = T0 + timedelta(minutes=2)
    (p95,) = selectors.metric_series(endpoint="ep1", metric="RequestLatency_P95", start=T0, end=end)
    assert p95["dimensions"] == {"deployment": "blue"}
    assert p95["timestamps"] == [T0, T0 + timedelta(minutes=1)]
    for minute, value in enumerate(p95["values"]):
        samples = np.array([r.latency_ms for r in requests if minute * 60 <= r.ts - T0.timestamp() < (minute + 1) * 60])
        assert value == expected_percentile(samples, 95)

    per_minute = selectors.metric_series(endpoint="ep1", metric="RequestsPerMinute", start=T0, end=end)
    by_class = {series["dimensions"]["statusCodeClass"]: series["values"] for series in per_minute}
    for status_class, low, high in (("2xx", 200, 300), ("4xx", 400, 500), ("5xx", 500, 600)):
        expected = [
            sum(1 for r in requests if low <= r.status < high and m * 60 <= r.ts - T0.timestamp() < (m + 1) * 60)
            for m in range(2)
        ]
        assert by_class[status_class] == expected


def test_ten_second_series_is_scaled_to_requests_per_minute() -> None:
    push(aggregate([Request(ts=T0.timestamp() + i * 0.1, deployment="blue", latency_ms=5.0) for i in range(30)]))
    services.metrics_ingest()
    (series,) = selectors.metric_series(
        endpoint="ep1", metric="RequestsPerMinute", start=T0, end=T0 + timedelta(minutes=1), grain=Grain.TEN_SECONDS
    )
    # 30 requests in the first 10 s: a rate of 180 per minute.
    assert series["values"] == [180.0]


def test_counts_are_exact_across_many_drains_and_late_records() -> None:
    rng = np.random.default_rng(3)
    requests = generated_load(rng, seconds=90, per_second=30)
    records = aggregate(requests)
    # Several gateways: each pushes its own record for the same second; some arrive after a drain.
    halves = [dict(r, count=0) for r in records]
    push(records[: len(records) // 2])
    services.metrics_ingest(limit=7)
    push(records[len(records) // 2 :])
    push(halves)
    services.metrics_ingest(limit=50)

    total = sum(MetricRollup.objects.filter(grain=Grain.MINUTE).values_list("requests", flat=True))
    assert total == len(requests)
    assert sum(MetricRollup.objects.filter(grain=Grain.TEN_SECONDS).values_list("requests", flat=True)) == len(requests)
    assert redis_client().llen(METRICS_QUEUE) == 0


def test_live_and_mirrored_are_kept_apart() -> None:
    live = [Request(ts=T0.timestamp() + i, deployment="blue", latency_ms=10.0) for i in range(20)]
    mirrored = [Request(ts=T0.timestamp() + i, deployment="green", latency_ms=30.0, mirrored=True) for i in range(5)]
    push(aggregate(live + mirrored))
    services.metrics_ingest()

    end = T0 + timedelta(minutes=1)
    live_series = selectors.metric_series(endpoint="ep1", metric="RequestsPerMinute", start=T0, end=end)
    assert [(s["dimensions"]["deployment"], s["values"]) for s in live_series] == [("blue", [20.0])]
    mirrored_series = selectors.metric_series(
        endpoint="ep1", metric="RequestsPerMinute", start=T0, end=end, mirrored=True
    )
    assert [(s["dimensions"]["deployment"], s["values"]) for s in mirrored_series] == [("green", [5.0])]
    green = selectors.window_summary(endpoint="ep1", deployment="green", start=T0, end=end, grain=Grain.MINUTE)
    assert (green.requests, green.mirrored_requests) == (5, 5)


def test_a_drain_that_died_is_finished_by_the_next_one() -> None:
    push(aggregate([Request(ts=T0.timestamp(), deployment="blue", latency_ms=1.0) for _ in range(10)]))
    # A drain moved the batch to the processing list and then died before writing it.
    client = redis_client()
    client.rpush(METRICS_QUEUE + ":processing", *client.lrange(METRICS_QUEUE, 0, -1))
    client.delete(METRICS_QUEUE)

    result = services.metrics_ingest()

    assert result.requests == 10
    assert MetricRollup.objects.get(grain=Grain.MINUTE).requests == 10


def test_malformed_records_are_skipped_and_the_rest_counted() -> None:
    redis_client().rpush(METRICS_QUEUE, b"not json", json.dumps({"ts": "soon"}))
    push(aggregate([Request(ts=T0.timestamp(), deployment="blue", latency_ms=1.0)]))
    result = services.metrics_ingest()
    assert (result.skipped, result.requests) == (2, 1)


def test_unknown_metric_is_refused_naming_the_known_ones() -> None:
    from apps.core.errors import ApplicationError

    with pytest.raises(ApplicationError, match="metric: unknown metric 'Latency'; known: RequestLatency_P50"):
        selectors.metric_series(endpoint="ep1", metric="Latency", start=T0, end=T0 + timedelta(minutes=1))


def test_prune_keeps_each_grain_for_its_retention(settings: object) -> None:
    now = T0 + timedelta(days=40)
    for ts in (
        now - timedelta(hours=25),
        now - timedelta(hours=23),
        now - timedelta(days=31),
        now - timedelta(days=29),
    ):
        push(aggregate([Request(ts=ts.timestamp(), deployment="blue", latency_ms=1.0)]))
    services.metrics_ingest()

    deleted = services.metrics_prune(now=now)

    assert deleted["rollups_10s"] == 3  # older than 24 h
    assert deleted["rollups_1m"] == 1  # older than 30 days
    assert deleted["rollups_1h"] == 0  # hours are kept 400 days
    kept_10s = list(MetricRollup.objects.filter(grain=Grain.TEN_SECONDS).values_list("ts", flat=True))
    assert kept_10s == [now - timedelta(hours=23)]
    assert MetricRollup.objects.filter(grain=Grain.MINUTE).count() == 3
    assert services.metrics_prune(now=now + timedelta(days=400))["rollups_1h"] == 4


def test_beat_task_drains_metrics_and_mirror_pairs() -> None:
    from apps.monitoring import tasks
    from tests.monitoring.gateway import push_pairs

    push(aggregate([Request(ts=T0.timestamp() + i, deployment="blue", latency_ms=3.0) for i in range(7)]))
    push_pairs(
        [
            {
                "ts": T0.timestamp(),
                "endpoint": "ep1",
                "deployment": "green",
                "live_deployment": "blue",
                "request_id": "r1",
                "live_status": 200,
                "shadow_status": 200,
                "live_body": "{}",
                "shadow_body": "{}",
                "truncated": False,
            }
        ]
    )
    # one row per grain; ep1's figures pushed to its open Monitoring tabs
    assert tasks.metrics_ingest() == {"records": 7, "requests": 7, "rows": 3, "pairs": 1, "pushed": 1}


def test_latency_of_live_and_mirrored_together_merges_histograms() -> None:
    live = [Request(ts=T0.timestamp() + i, deployment="green", latency_ms=10.0) for i in range(10)]
    mirrored = [Request(ts=T0.timestamp() + i, deployment="green", latency_ms=100.0, mirrored=True) for i in range(10)]
    push(aggregate(live + mirrored))
    services.metrics_ingest()
    end = T0 + timedelta(minutes=1)
    (both,) = selectors.metric_series(endpoint="ep1", metric="RequestLatency_P90", start=T0, end=end, mirrored=None)
    (only_live,) = selectors.metric_series(endpoint="ep1", metric="RequestLatency_P90", start=T0, end=end)
    assert both["values"] == [histogram.bucket_upper_ms(histogram.bucket_index(100.0))]
    assert only_live["values"] == [histogram.bucket_upper_ms(histogram.bucket_index(10.0))]

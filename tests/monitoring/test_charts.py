"""The Plotly figures the Monitoring tab draws, built from the store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from apps.monitoring import charts, histogram, selectors, services
from apps.monitoring.models import Grain, InstanceSample
from tests.monitoring.gateway import Request, aggregate, push

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_endpoint_figures_show_each_deployment_percentiles_rates_and_errors() -> None:
    load = [Request(ts=T0.timestamp() + i, deployment="blue", latency_ms=10.0) for i in range(30)]
    load += [Request(ts=T0.timestamp() + i, deployment="green", latency_ms=50.0, status=503) for i in range(6)]
    push(aggregate(load))
    services.metrics_ingest()

    figures = charts.endpoint_figures(endpoint="ep1", minutes=60, now=T0 + timedelta(minutes=30))

    json.dumps(figures)  # what the page receives
    # One line per deployment per chart: the latency chart draws the chosen percentile (p95 by default).
    latency = {trace["name"]: trace for trace in figures["latency"]["data"]}
    assert sorted(latency) == ["blue", "green"]
    assert figures["latency"]["layout"]["title"]["text"] == "Request latency (p95)"
    assert latency["blue"]["x"][0] == T0.isoformat()
    p99 = charts.endpoint_figures(endpoint="ep1", minutes=60, now=T0 + timedelta(minutes=30), percentile="p99")
    assert p99["latency"]["data"][1]["y"] == [histogram.bucket_upper_ms(histogram.bucket_index(50.0))]
    # Ten-second rollups summed into whole minutes: 30 requests in the first minute is 30 a minute, and six
    # errors in six seconds are six a minute (not 36, as scaling one 10 s bucket by six would draw).
    requests = {trace["name"]: (trace["x"], trace["y"]) for trace in figures["requests"]["data"]}
    assert requests["blue"] == ([T0.isoformat()], [30.0])
    errors = {trace["name"]: trace["y"] for trace in figures["errors"]["data"]}
    assert errors == {"blue": [0.0], "green": [6.0]}


def test_per_minute_rate_is_right_for_every_bucket_size() -> None:
    x = [(T0 + timedelta(seconds=s)).isoformat() for s in (0, 10, 50, 60)]
    assert charts.per_minute(x, [1, 0, 2, 1], grain=10) == ([T0.isoformat(), x[3]], [3.0, 1.0])
    assert charts.per_minute(x[:1], [5], grain=60) == (x[:1], [5.0])
    assert charts.per_minute(x[:1], [120], grain=3600) == (x[:1], [2.0])


def test_a_minute_still_in_progress_is_a_rate_over_the_part_that_has_passed() -> None:
    """60 a minute, steady: 20 answers in the first 20 s of the current minute are 60 a minute, not 20."""
    x = [(T0 + timedelta(seconds=s)).isoformat() for s in (0, 10, 20, 30, 40, 50, 60, 70)]
    counts = [10, 10, 10, 10, 10, 10, 10, 10]
    assert charts.per_minute(x, counts, grain=10, end=T0 + timedelta(seconds=80)) == (
        [T0.isoformat(), x[6]],
        [60.0, 60.0],
    )
    assert charts.per_minute(x, counts, grain=10, end=T0 + timedelta(minutes=5))[1] == [60.0, 20.0]  # over
    assert charts.per_minute(x[:1], [30], grain=60, end=T0 + timedelta(seconds=30)) == (x[:1], [60.0])
    assert charts.per_minute(x[:1], [1], grain=10, end=T0 + timedelta(seconds=1))[1] == [6.0]  # not 60: ≥ 10 s


def test_usage_figures_draw_the_mean_of_each_deployments_instances() -> None:
    for instance, cpu, disk in (("blue-0", 10.0, 1024**2), ("blue-1", 30.0, 3 * 1024**2)):
        InstanceSample.objects.create(
            ts=T0 + timedelta(seconds=5),
            endpoint="ep1",
            deployment="blue",
            instance=instance,
            cpu_percent=cpu,
            memory_percent=50.0,
            disk_bytes=disk,
        )
    figures = charts.usage_figures(endpoint="ep1", start=T0, end=T0 + timedelta(hours=1), now=T0 + timedelta(hours=1))
    assert [trace["name"] for trace in figures["cpu"]["data"]] == ["blue"]
    assert figures["cpu"]["data"][0]["y"] == [20.0]
    assert figures["memory"]["data"][0]["y"] == [50.0]
    assert figures["disk"]["data"][0]["y"] == [2.0]


def test_chart_grain_keeps_lines_readable_and_within_retention() -> None:
    now = T0
    assert selectors.chart_grain(start=now - timedelta(hours=1), end=now, now=now) == Grain.TEN_SECONDS
    assert selectors.chart_grain(start=now - timedelta(days=2), end=now, now=now) == Grain.MINUTE
    assert selectors.chart_grain(start=now - timedelta(days=30), end=now, now=now) == Grain.HOUR
    # Two hours a week ago: 10-second rollups are gone, minutes remain.
    week_ago = now - timedelta(days=7)
    assert selectors.chart_grain(start=week_ago, end=week_ago + timedelta(hours=2), now=now) == Grain.MINUTE


def test_requests_refused_before_routing_are_drawn_as_not_routed() -> None:
    push(aggregate([Request(ts=T0.timestamp(), deployment="", latency_ms=1.0, status=401) for _ in range(3)]))
    services.metrics_ingest()
    figures = charts.endpoint_figures(endpoint="ep1", minutes=60, now=T0 + timedelta(minutes=30))
    assert [trace["name"] for trace in figures["requests"]["data"]] == ["(not routed)"]
    assert figures["errors"]["data"][0]["name"] == "(not routed)"
    assert figures["errors"]["data"][0]["y"] == [3.0]

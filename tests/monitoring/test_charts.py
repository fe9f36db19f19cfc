"""The Plotly figures the Monitoring tab draws, built from the store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from apps.monitoring import charts, histogram, selectors, services
from apps.monitoring.models import Grain
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
    latency = {trace["name"]: trace for trace in figures["latency"]["data"]}
    assert sorted(latency) == sorted(f"{d} {p}" for d in ("blue", "green") for p in ("p50", "p90", "p95", "p99"))
    assert latency["blue p95"]["x"][0] == T0.isoformat()
    assert latency["green p99"]["y"] == [histogram.bucket_upper_ms(histogram.bucket_index(50.0))]
    # Ten-second points for a one-hour window, scaled to requests per minute: 10 requests in 10 s is 60 / min.
    requests = {trace["name"]: trace["y"] for trace in figures["requests"]["data"]}
    assert requests["blue"] == [60.0, 60.0, 60.0]
    errors = {trace["name"]: trace["y"] for trace in figures["errors"]["data"]}
    assert errors["green 5xx"] == [36.0] and errors["blue 5xx"] == [0.0, 0.0, 0.0]


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
    assert figures["errors"]["data"][0]["name"] == "(not routed) 4xx"
    assert figures["errors"]["data"][0]["y"] == [18.0]

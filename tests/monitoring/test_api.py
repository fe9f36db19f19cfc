"""The metrics API as the CLI and CI call it: series under Azure's metric names, and compare."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.monitoring import histogram, services
from tests import factories
from tests.monitoring.gateway import Request, aggregate, push, push_pairs

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
WINDOW = {"start": "2026-11-20T12:00:00Z", "end": "2026-11-20T12:05:00Z"}


@pytest.fixture
def traffic(api: Any) -> None:
    endpoint = factories.endpoint("ep1")
    factories.deployment(endpoint, "blue")
    factories.deployment(endpoint, "green")
    load = [Request(ts=T0.timestamp() + i, deployment="blue", latency_ms=20.0) for i in range(120)]
    load += [Request(ts=T0.timestamp() + i, deployment="blue", latency_ms=20.0, status=500) for i in range(0, 120, 12)]
    load += [Request(ts=T0.timestamp() + i, deployment="green", latency_ms=8.0, mirrored=True) for i in range(12)]
    push(aggregate(load))
    services.metrics_ingest()


def test_latency_series_by_deployment(api: Any, traffic: None) -> None:
    response = api.get("/api/v1/online-endpoints/ep1/metrics", {"metric": "RequestLatency_P95", **WINDOW})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["metric"], body["grain"]) == ("RequestLatency_P95", "1m")
    (blue,) = body["timeseries"]
    bucket = histogram.bucket_upper_ms(histogram.bucket_index(20.0))
    assert blue["dimensions"] == {"deployment": "blue"}
    assert blue["data"] == [
        {"timeStamp": "2026-11-20T12:00:00+00:00", "value": bucket},
        {"timeStamp": "2026-11-20T12:01:00+00:00", "value": bucket},
    ]


def test_requests_per_minute_by_status_class_and_mirrored(api: Any, traffic: None) -> None:
    live = api.get("/api/v1/online-endpoints/ep1/metrics", {"metric": "RequestsPerMinute", **WINDOW}).json()
    values = {s["dimensions"]["statusCodeClass"]: [d["value"] for d in s["data"]] for s in live["timeseries"]}
    assert values == {"2xx": [60.0, 60.0], "5xx": [5.0, 5.0]}
    mirrored = api.get(
        "/api/v1/online-endpoints/ep1/metrics", {"metric": "RequestsPerMinute", "mirrored": "true", **WINDOW}
    ).json()
    assert [(s["dimensions"]["deployment"], s["data"][0]["value"]) for s in mirrored["timeseries"]] == [("green", 12.0)]


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({}, "metric", "metric: required; one of RequestLatency_P50"),
        ({"metric": "Latency"}, "metric", "metric: unknown metric 'Latency'"),
        ({"metric": "RequestsPerMinute", "start": "yesterday"}, "start", "start: expected an ISO 8601 time"),
        ({"metric": "RequestsPerMinute", "grain": "5m"}, "grain", "grain: expected 10s, 1m or 1h, got '5m'"),
        (
            {
                "metric": "RequestsPerMinute",
                "grain": "10s",
                "start": "2026-11-01T00:00:00Z",
                "end": "2026-11-20T00:00:00Z",
            },
            "grain",
            "grain: 10s over 456 hours is more than 50000 points a series; use a coarser grain",
        ),
        (
            {"metric": "RequestsPerMinute", "start": "2026-11-20T13:00:00Z", "end": "2026-11-20T12:00:00Z"},
            "end",
            "end: must be after start",
        ),
    ],
)
def test_bad_metric_queries_get_a_clear_400(api: Any, traffic: None, params: dict, field: str, message: str) -> None:
    response = api.get("/api/v1/online-endpoints/ep1/metrics", params)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert response.json()["error"]["message"].startswith(message)


def test_compare_side_by_side_with_agreement(api: Any, traffic: None) -> None:
    push_pairs(
        [
            {
                "ts": T0.timestamp() + i,
                "endpoint": "ep1",
                "deployment": "green",
                "live_deployment": "blue",
                "request_id": f"r{i}",
                "live_status": 200,
                "shadow_status": 200,
                "live_body": '{"y": 1.0}',
                "shadow_body": '{"y": 1.0000001}' if i < 3 else '{"y": 2.0}',
                "truncated": False,
            }
            for i in range(4)
        ]
    )
    services.mirror_pairs_ingest()

    response = api.get("/api/v1/online-endpoints/ep1/compare", {"a": "blue", "b": "green", **WINDOW})

    assert response.status_code == 200, response.content
    body = response.json()
    blue, green = body["deployments"]
    assert (blue["requests"], blue["status"]["5xx"], blue["error_rate"]) == (130, 10, round(10 / 130, 6))
    assert green["mirrored_requests"] == 12
    (agreement,) = body["agreement"]
    assert (agreement["compared"], agreement["agreed"], agreement["agreed_within_tolerance"]) == (4, 3, 3)
    assert agreement["examples"][0]["difference"] == "$.y: 1.0 != 2.0"
    strict = api.get(
        "/api/v1/online-endpoints/ep1/compare", {"a": "blue", "b": "green", "tolerance": "0", **WINDOW}
    ).json()
    assert strict["agreement"][0]["agreed"] == 0


def test_compare_names_a_missing_deployment(api: Any, traffic: None) -> None:
    response = api.get("/api/v1/online-endpoints/ep1/compare", {"a": "blue", "b": "red"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "deployment 'red' does not exist in online endpoint 'ep1'"
    response = api.get("/api/v1/online-endpoints/ep1/compare", {"a": "blue"})
    assert (response.status_code, response.json()["error"]["field"]) == (400, "b")


def test_metrics_need_a_login(traffic: None) -> None:
    response = APIClient().get("/api/v1/online-endpoints/ep1/metrics", {"metric": "RequestsPerMinute"})
    assert response.status_code == 401

"""What the gateway records: per-second MetricsRecord batches in Redis and the Prometheus page."""

from __future__ import annotations

import httpx
import pytest

from gateway.metrics import FLUSH_PAST_S, next_flush_in
from gateway.wire import percentile
from tests.gateway.conftest import bearer, fire, make_deployment, make_endpoint, set_traffic


def test_requests_become_per_second_records_in_redis(start_instance, gateway) -> None:
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=1) and gateway.state.config.table["ep1"].weights)

    fire(gateway.score_url("ep1"), bearer(ep), 30)
    fire(gateway.score_url("ep1"), bearer(ep), 5, payload={"status": 500})
    httpx.post(gateway.score_url("ep1"), json={}, headers={"Authorization": "Bearer nope"})

    def total() -> int:
        return sum(r["count"] for r in gateway.metrics_records())

    gateway.wait_for(lambda: total() == 36, timeout=5)
    records = gateway.metrics_records()
    blue_records = [r for r in records if r["deployment"] == "blue"]
    assert all(r["endpoint"] == "ep1" and r["mirrored"] is False for r in records)
    assert sum(r["codes"].get("200", 0) for r in blue_records) == 30
    assert sum(r["codes"].get("424", 0) for r in blue_records) == 5
    assert sum(r["model_codes"].get("500", 0) for r in blue_records) == 5
    assert sum(r["status"].get("2xx", 0) for r in blue_records) == 30
    # the 401 never reached a deployment: counted for the endpoint with no deployment name
    assert [r["codes"] for r in records if r["deployment"] == ""] == [{"401": 1}]
    assert len({r["ts"] for r in blue_records}) == len(blue_records)  # one record per second
    latency: dict[int, int] = {}
    upstream: dict[int, int] = {}
    for record in blue_records:
        for key, count in record["latency"].items():
            latency[int(key)] = latency.get(int(key), 0) + count
        for key, count in record["upstream_latency"].items():
            upstream[int(key)] = upstream.get(int(key), 0) + count
    assert sum(latency.values()) == sum(upstream.values()) == 35
    assert percentile(upstream, 50) <= percentile(latency, 50)
    assert sum(r["bytes_out"] for r in blue_records) > 0


def test_the_prometheus_page_counts_requests(start_instance, gateway) -> None:
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=1) and gateway.state.config.table["ep1"].weights)
    fire(gateway.score_url("ep1"), bearer(ep), 7)

    page = httpx.get(f"{gateway.url}/metrics")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    assert 'studio_gateway_requests_total{endpoint="ep1",deployment="blue",code="200",mirrored="false"} 7' in page.text
    assert "studio_gateway_routing_reloads_total" in page.text
    assert httpx.get(f"{gateway.url}/nothing").status_code == 404


def test_with_metrics_off_requests_are_served_and_not_counted(start_instance, start_gateway, monkeypatch) -> None:
    from gateway.config import GatewaySettings

    monkeypatch.setenv("STUDIO_GATEWAY_METRICS", "0")
    assert GatewaySettings.from_env().metrics_enabled is False
    gateway = start_gateway(metrics_enabled=False)
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=1) and gateway.state.config.table["ep1"].weights)

    statuses = {httpx.post(gateway.score_url("ep1"), json={"x": 1}, headers=bearer(ep)).status_code for _ in range(5)}

    assert statuses == {200}
    gateway.stop()  # with counting on, a stopping gateway pushes every second it still holds
    assert gateway.metrics_records() == []


def test_a_finished_second_is_pushed_just_after_it_ends_not_a_whole_interval_later() -> None:
    # The free-running timer had an arbitrary phase: a second ending at 13.0 could wait until 13.99.
    assert next_flush_in(12.3) == pytest.approx(0.7 + FLUSH_PAST_S)
    assert next_flush_in(12.999) == pytest.approx(0.001 + FLUSH_PAST_S)
    assert next_flush_in(13.0) == pytest.approx(1.0 + FLUSH_PAST_S)
    assert next_flush_in(12.3, every_s=2.0) == pytest.approx(1.7 + FLUSH_PAST_S)

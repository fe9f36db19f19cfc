"""The gateway outlives Redis: it keeps routing from its last table, keeps its metrics in a bounded buffer
while Redis is down, sends them when it is back, and counts what it had to drop."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import redis

from apps.core.redis_server import EmbeddedRedis
from tests.gateway.conftest import bearer, fire, make_deployment, make_endpoint, set_traffic


def _records(server: EmbeddedRedis, queue: str) -> list[dict]:
    client = redis.Redis.from_url(server.url)
    try:
        return [json.loads(item) for item in client.lrange(queue, 0, -1)]
    except redis.ConnectionError:
        return []
    finally:
        client.close()


def test_scoring_goes_on_while_redis_is_down_and_metrics_arrive_when_it_is_back(
    start_instance, start_gateway, tmp_path: Path
) -> None:
    # A Redis of the gateway's own, so that stopping it does not touch the test run's.
    server = EmbeddedRedis(Path(os.path.realpath(tmp_path)) / "r.sock", persist=False)
    server.start()
    try:
        blue = start_instance("blue-0")
        ep = make_endpoint("ep1")
        make_deployment(ep, "blue", blue)
        set_traffic(ep, {"blue": 100})
        gateway = start_gateway(redis_url=server.url, metrics_buffer=50)
        gateway.wait_for(
            lambda: gateway.knows("ep1", "blue", instances=1) and gateway.state.config.table["ep1"].weights
        )
        queue = gateway.state.settings.metrics_queue
        assert [shot.status for shot in fire(gateway.score_url("ep1"), bearer(ep), 10)] == [200] * 10

        server.stop()
        gateway.wait_for(lambda: gateway.state.config.redis_down)
        shots = fire(gateway.score_url("ep1"), bearer(ep), 40)
        assert [shot.status for shot in shots] == [200] * 40  # routed from the last table
        health = httpx.get(f"{gateway.url}/healthz").json()
        assert health["ok"] is True and health["redis"] == "down" and health["endpoints"] == 1
        time.sleep(gateway.state.settings.metrics_flush_s * 2)  # at least one flush fails while Redis is down

        server.start()
        gateway.wait_for(lambda: sum(r["count"] for r in _records(server, queue)) >= 40, timeout=15)
        assert gateway.state.metrics.records_dropped == 0
        assert "studio_gateway_metrics_records_dropped_total 0" in httpx.get(f"{gateway.url}/metrics").text
    finally:
        server.stop()


def test_the_buffer_is_bounded_and_drops_are_counted(start_instance, start_gateway, tmp_path: Path) -> None:
    server = EmbeddedRedis(Path(os.path.realpath(tmp_path)) / "r.sock", persist=False)
    server.start()
    server.stop()  # down from the start: every record waits
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    set_traffic(ep, {"blue": 100})
    gateway = start_gateway(redis_url=server.url, metrics_buffer=1)
    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=1) and gateway.state.config.table["ep1"].weights)
    for _ in range(3):  # three distinct seconds: three records, one kept
        assert fire(gateway.score_url("ep1"), bearer(ep), 1)[0].status == 200
        second = int(time.time())
        while int(time.time()) == second:
            time.sleep(0.05)
    gateway.wait_for(lambda: gateway.state.metrics.records_dropped >= 2, timeout=10)
    assert len(gateway.state._unsent_records) == 1

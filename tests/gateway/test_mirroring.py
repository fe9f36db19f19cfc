"""Mirroring against real instances: the fraction copied, never for pinned requests, never delaying the
client, dropped and counted under pressure, and recorded as shadow metrics and sampled answer pairs.
"""

from __future__ import annotations

import json
import uuid

import httpx

from apps.core.keys import redis_key
from apps.core.notify import redis_client
from tests.gateway.conftest import bearer, fire, make_deployment, make_endpoint, set_traffic


def _blue_green(gateway, start_instance, mirror: int, green_env: dict[str, str] | None = None):  # noqa: ANN001, ANN202
    blue, green = start_instance("blue-0"), start_instance("green-0", env=green_env)
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue, max_concurrent_requests_per_instance=4)
    make_deployment(ep, "green", green, max_concurrent_requests_per_instance=4)
    set_traffic(ep, {"blue": 100, "green": 0}, {"green": mirror})
    gateway.wait_for(lambda: gateway.knows("ep1", "green", instances=1) and gateway.state.config.table["ep1"].mirror)
    return ep, blue, green


def test_mirror_traffic_copies_its_percentage_to_the_shadow(start_instance, gateway) -> None:
    ep, blue, green = _blue_green(gateway, start_instance, mirror=20)

    shots = fire(gateway.score_url("ep1"), bearer(ep), 1000)
    gateway.wait_for(lambda: gateway.state.mirror_in_flight == 0)

    assert {(s.status, s.deployment) for s in shots} == {(200, "blue")}  # the client only sees live answers
    assert all(json.loads(s.body)["instance"] == "blue-0" for s in shots)
    copies = green.scored()
    # Binomial(1000, 0.2): mean 200, standard deviation 12.6; 5 of them.
    assert abs(copies - 200) < 64, copies
    assert blue.scored() == 1000


def test_pinned_requests_are_never_mirrored(start_instance, gateway) -> None:
    ep, blue, green = _blue_green(gateway, start_instance, mirror=50)

    shots = fire(gateway.score_url("ep1"), {**bearer(ep), "azureml-model-deployment": "blue"}, 200)
    gateway.wait_for(lambda: gateway.state.mirror_in_flight == 0)

    assert {s.status for s in shots} == {200}
    assert green.scored() == 0
    assert blue.scored() == 200


def test_a_slow_shadow_does_not_delay_the_client(start_instance, gateway, tmp_path) -> None:
    gate = tmp_path / "release-green"
    ep, _, green = _blue_green(gateway, start_instance, mirror=50, green_env={"GATE_FILE": str(gate)})

    # The shadow holds every copy until the gate opens, after the client has all its answers.
    with httpx.Client(timeout=120) as client:
        statuses = [client.post(gateway.score_url("ep1"), json={}, headers=bearer(ep)).status_code for _ in range(30)]
    held = gateway.state.mirror_in_flight
    gate.touch()

    assert statuses == [200] * 30
    assert held > 0  # copies were still at the shadow (Binomial(30, 0.5) is 0 once in 10⁹)
    gateway.wait_for(lambda: gateway.state.mirror_in_flight == 0)
    assert green.scored() > 0


def test_shadow_copies_beyond_the_bound_are_dropped_and_counted(start_instance, start_gateway) -> None:
    gateway = start_gateway(mirror_max_in_flight=1)
    ep, _, green = _blue_green(gateway, start_instance, mirror=50, green_env={"SLEEP_S": "0.5"})

    shots = fire(gateway.score_url("ep1"), bearer(ep), 40)
    gateway.wait_for(lambda: gateway.state.mirror_in_flight == 0, timeout=20)

    assert {s.status for s in shots} == {200}
    dropped = gateway.state.metrics.mirror_dropped[("ep1", "green")]
    assert dropped > 0
    page = httpx.get(f"{gateway.url}/metrics").text
    assert f'studio_gateway_mirror_dropped_total{{endpoint="ep1",deployment="green"}} {dropped}' in page
    assert green.scored() <= 40 - dropped


def test_shadow_answers_are_recorded_as_mirrored_metrics_and_sampled_pairs(start_instance, start_gateway) -> None:
    pairs_queue = redis_key(f"mirror-pairs:{uuid.uuid4().hex}")
    gateway = start_gateway(mirror_sample_rate=1.0, mirror_pairs_queue=pairs_queue)
    ep, _, green = _blue_green(gateway, start_instance, mirror=50)
    try:
        fire(gateway.score_url("ep1"), bearer(ep), 100)
        gateway.wait_for(lambda: gateway.state.mirror_in_flight == 0)
        copies = green.scored()

        def shadow_count() -> int:
            records = gateway.metrics_records()
            return sum(r["count"] for r in records if r["deployment"] == "green" and r["mirrored"])

        gateway.wait_for(lambda: shadow_count() == copies, timeout=5)
        records = gateway.metrics_records()
        live = sum(r["count"] for r in records if r["deployment"] == "blue" and not r["mirrored"])
        assert live == 100
        assert not [r for r in records if r["deployment"] == "green" and not r["mirrored"]]
        gateway.wait_for(lambda: redis_client().llen(pairs_queue) == copies, timeout=5)
        pairs = [json.loads(item) for item in redis_client().lrange(pairs_queue, 0, -1)]
        pair = pairs[0]
        assert (pair["endpoint"], pair["deployment"], pair["live_deployment"]) == ("ep1", "green", "blue")
        assert (pair["live_status"], pair["shadow_status"]) == (200, 200)
        assert json.loads(pair["live_body"])["instance"] == "blue-0"
        assert json.loads(pair["shadow_body"])["instance"] == "green-0"
        assert pair["truncated"] is False
        assert len({p["request_id"] for p in pairs}) == len(pairs)
    finally:
        redis_client().delete(pairs_queue)

"""Scoring through the gateway against real inference-server processes: auth, routing, pinning, headers."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter

import httpx
import pytest

from apps.endpoints import services
from tests.gateway.conftest import bearer, fire, make_deployment, make_endpoint, set_traffic


def _routed(gateway, name: str = "ep1"):  # noqa: ANN001, ANN202
    return lambda: bool(gateway.state.config.table.get(name) and gateway.state.config.table[name].weights)


def test_a_scored_request_reaches_the_model_and_names_the_deployment(start_instance, gateway) -> None:
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(_routed(gateway))

    response = httpx.post(gateway.score_url("ep1"), json={"data": [1, 2]}, headers=bearer(ep))

    assert response.status_code == 200
    assert response.json() == {"instance": "blue-0", "echo": {"data": [1, 2]}}
    assert response.headers["azureml-model-deployment"] == "blue"
    assert uuid.UUID(response.headers["x-request-id"])  # generated when the client sent none
    assert response.headers["content-type"] == "application/json"


def test_request_ids_are_kept_and_client_request_id_echoed(start_instance, gateway) -> None:
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(_routed(gateway))

    response = httpx.post(
        gateway.score_url("ep1"),
        json={},
        headers={**bearer(ep), "x-request-id": "my-trace-1", "x-ms-client-request-id": "client-42"},
    )

    assert response.status_code == 200
    assert response.headers["x-request-id"] == "my-trace-1"
    assert response.headers["x-ms-client-request-id"] == "client-42"
    assert response.headers.get_list("x-request-id") == ["my-trace-1"]  # not doubled by the instance's echo


def test_get_scoring_passes_the_query_string(start_instance, gateway) -> None:
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(_routed(gateway))

    response = httpx.get(gateway.score_url("ep1") + "?a=1&b=x", headers=bearer(ep))

    assert response.status_code == 200
    assert response.json()["echo"] == {"a": 1, "b": "x"}


def test_missing_or_wrong_key_is_401_and_both_keys_work(start_instance, gateway) -> None:
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(_routed(gateway))
    url = gateway.score_url("ep1")

    missing = httpx.post(url, json={})
    wrong = httpx.post(url, json={}, headers={"Authorization": "Bearer not-the-key", "x-ms-client-request-id": "c-1"})
    primary = httpx.post(url, json={}, headers=bearer(ep, "primary"))
    secondary = httpx.post(url, json={}, headers=bearer(ep, "secondary"))

    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "Unauthorized"
    assert "Authorization: Bearer" in wrong.json()["error"]["message"]
    assert wrong.headers["x-ms-client-request-id"] == "c-1"  # refused answers are traceable too
    assert uuid.UUID(wrong.headers["x-request-id"])
    assert (primary.status_code, secondary.status_code) == (200, 200)


def test_a_regenerated_key_works_and_the_old_one_stops(start_instance, gateway) -> None:
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(_routed(gateway))
    old = bearer(ep, "primary")
    assert httpx.post(gateway.score_url("ep1"), json={}, headers=old).status_code == 200

    services.keys_regenerate(endpoint=ep, key_type="primary")
    new = bearer(ep, "primary")

    url = gateway.score_url("ep1")
    gateway.wait_for(lambda: httpx.post(url, json={}, headers=new).status_code == 200)
    assert httpx.post(url, json={}, headers=old).status_code == 401
    assert httpx.post(url, json={}, headers=bearer(ep, "secondary")).status_code == 200


def test_aml_token_endpoints_take_an_unexpired_token_and_refuse_keys(start_instance, gateway) -> None:
    blue = start_instance("blue-0")
    ep = make_endpoint("ep2", auth_mode="aml_token")
    make_deployment(ep, "blue", blue)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(_routed(gateway, "ep2"))
    url = gateway.score_url("ep2")
    token = services.token_issue(endpoint=ep)["accessToken"]
    from gateway.wire import issue_token

    expired, _ = issue_token(endpoint="ep2", secret=ep.token_secret, lifetime_s=60, now=0)

    assert httpx.post(url, json={}, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    refused = httpx.post(url, json={}, headers={"Authorization": f"Bearer {expired}"})
    assert refused.status_code == 401
    assert "aml_token" in refused.json()["error"]["message"]
    assert httpx.post(url, json={}, headers=bearer(ep)).status_code == 401


def test_keys_never_reach_the_model_or_the_logs(start_instance, gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(_routed(gateway))
    headers = bearer(ep)
    key = headers["Authorization"].split()[1]
    httpx.post(gateway.score_url("ep1"), json={}, headers={"Authorization": "Bearer wrong-key-zzz"})
    response = httpx.post(gateway.score_url("ep1"), json={}, headers=headers)

    assert response.status_code == 200
    assert key not in blue.log_path.read_text()
    assert key not in caplog.text and "wrong-key-zzz" not in caplog.text
    assert key not in response.text


def test_weights_split_traffic_within_statistical_bounds(start_instance, gateway) -> None:
    blue, green = start_instance("blue-0"), start_instance("green-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    make_deployment(ep, "green", green)
    set_traffic(ep, {"blue": 70, "green": 30})
    gateway.wait_for(_routed(gateway))

    shots = fire(gateway.score_url("ep1"), bearer(ep), 1200)

    assert all(shot.status == 200 for shot in shots)
    counts = Counter(shot.deployment for shot in shots)
    # Binomial(1200, 0.3): mean 360, standard deviation 15.9; 5 of them is a 1-in-a-million miss.
    assert abs(counts["green"] - 360) < 80, counts
    assert counts["blue"] + counts["green"] == 1200
    # and each deployment's answers came from its own instance
    assert {json.loads(s.body)["instance"] for s in shots if s.deployment == "green"} == {"green-0"}
    assert green.scored() == counts["green"]


def test_the_header_pins_a_deployment_even_without_weight(start_instance, gateway) -> None:
    blue, green = start_instance("blue-0"), start_instance("green-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    make_deployment(ep, "green", green)
    set_traffic(ep, {"blue": 100, "green": 0})
    gateway.wait_for(_routed(gateway))

    shots = fire(gateway.score_url("ep1"), {**bearer(ep), "azureml-model-deployment": "green"}, 50)

    assert {(s.status, s.deployment) for s in shots} == {(200, "green")}
    assert blue.scored() == 0


def test_404_names_the_problem(start_instance, gateway) -> None:
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)  # traffic stays blue=0
    gateway.wait_for(lambda: gateway.knows("ep1", "blue"))

    no_weight = httpx.post(gateway.score_url("ep1"), json={}, headers=bearer(ep))
    unknown_pin = httpx.post(
        gateway.score_url("ep1"), json={}, headers={**bearer(ep), "azureml-model-deployment": "purple"}
    )
    unknown_endpoint = httpx.post(gateway.score_url("nope"), json={}, headers=bearer(ep))
    pinned = {**bearer(ep), "azureml-model-deployment": "blue"}
    pinned_ok = httpx.post(gateway.score_url("ep1"), json={}, headers=pinned)

    assert no_weight.status_code == 404
    assert no_weight.json()["error"]["message"].startswith("No valid deployments to route to.")
    assert unknown_pin.status_code == 404
    assert "'purple'" in unknown_pin.json()["error"]["message"]
    assert unknown_endpoint.status_code == 404
    assert "'nope' does not exist" in unknown_endpoint.json()["error"]["message"]
    assert pinned_ok.status_code == 200


def test_swagger_is_proxied_from_a_ready_instance(start_instance, gateway) -> None:
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(_routed(gateway))
    url = f"{gateway.url}/endpoints/ep1/swagger.json"

    response = httpx.get(url, headers=bearer(ep))
    direct = httpx.get(f"{blue.address}/swagger.json")

    assert response.status_code == 200
    assert response.json() == direct.json()
    assert response.headers["azureml-model-deployment"] == "blue"
    assert httpx.get(url).status_code == 401
    assert httpx.post(gateway.score_url("ep1"), json={}, headers=bearer(ep)).status_code == 200
    assert httpx.delete(gateway.score_url("ep1"), headers=bearer(ep)).status_code == 405

"""Azure's limits at the gateway, against real instances: 408, 413, 424, 429, 503, and failing over."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.gateway.conftest import Load, bearer, free_port, make_deployment, make_endpoint, set_traffic


def _serving(gateway, start_instance, **request_settings: int):  # noqa: ANN001, ANN202
    blue = start_instance("blue-0")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", blue, **request_settings)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=1) and gateway.state.config.table["ep1"].weights)
    return ep, blue


def test_a_model_slower_than_request_timeout_ms_is_408(start_instance, gateway, tmp_path) -> None:
    ep, _ = _serving(gateway, start_instance, request_timeout_ms=300)
    gate = tmp_path / "release"

    # The model holds its answer until the gate opens, after the client has its own: no waiting for the model.
    response = httpx.post(gateway.score_url("ep1"), json={"gate": str(gate)}, headers=bearer(ep), timeout=120)
    gate.touch()

    assert response.status_code == 408
    assert response.json()["error"]["code"] == "RequestTimeout"
    assert "request_timeout_ms=300" in response.json()["error"]["message"]
    assert response.headers["azureml-model-deployment"] == "blue"


def test_a_body_over_the_limit_is_413(start_instance, start_gateway) -> None:
    gateway = start_gateway(max_body_bytes=1000)
    ep, blue = _serving(gateway, start_instance)

    too_big = httpx.post(gateway.score_url("ep1"), json={"data": "x" * 2000}, headers=bearer(ep))

    def chunks():  # noqa: ANN202  (no Content-Length: the limit is enforced while reading)
        for _ in range(5):
            yield b"y" * 400

    streamed = httpx.post(gateway.score_url("ep1"), content=chunks(), headers=bearer(ep))
    small = httpx.post(gateway.score_url("ep1"), json={"data": "x" * 100}, headers=bearer(ep))

    assert too_big.status_code == 413
    assert "1000 bytes" in too_big.json()["error"]["message"]
    assert streamed.status_code == 413
    assert small.status_code == 200
    assert blue.scored() == 1


def test_a_non_200_from_the_model_is_424_with_its_status_in_headers(start_instance, gateway) -> None:
    ep, _ = _serving(gateway, start_instance)

    response = httpx.post(gateway.score_url("ep1"), json={"status": 500}, headers=bearer(ep))
    bad_input = httpx.post(gateway.score_url("ep1"), json={"status": 400}, headers=bearer(ep))

    assert response.status_code == 424
    assert response.headers["ms-azureml-model-error-statuscode"] == "500"
    assert response.headers["ms-azureml-model-error-reason"] == "model_error"
    assert response.json() == {"message": "the model says no"}  # the model's own body, for debugging
    assert bad_input.status_code == 424
    assert bad_input.headers["ms-azureml-model-error-statuscode"] == "400"


def test_more_than_twice_max_concurrent_per_instance_in_flight_is_429(start_instance, gateway) -> None:
    ep, blue = _serving(gateway, start_instance, max_concurrent_requests_per_instance=1)
    url = gateway.score_url("ep1")

    def slow(_: int) -> httpx.Response:
        return httpx.post(url, json={"sleep": 0.6}, headers=bearer(ep), timeout=30)

    # The instance answers one at a time (0.6 s each); the limit is 2 × 1 × 1 instance = 2 in flight.
    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(slow, range(5)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429, 429]
    refused = next(r for r in responses if r.status_code == 429)
    assert "= 2" in refused.json()["error"]["message"]
    assert blue.scored() == 2


def test_no_ready_instance_is_503(start_instance, gateway) -> None:
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue")  # no instance at all
    make_deployment(ep, "green", f"http://127.0.0.1:{free_port()}")  # one that refuses connections
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(lambda: gateway.knows("ep1", "green", instances=1) and gateway.state.config.table["ep1"].weights)

    none_ready = httpx.post(gateway.score_url("ep1"), json={}, headers=bearer(ep))
    refused = httpx.post(gateway.score_url("ep1"), json={}, headers={**bearer(ep), "azureml-model-deployment": "green"})

    assert none_ready.status_code == 503
    assert "has no ready instance" in none_ready.json()["error"]["message"]
    assert refused.status_code == 503
    assert "refused" in refused.json()["error"]["message"]


def test_a_refusing_instance_sends_requests_to_another_ready_one(start_instance, gateway) -> None:
    alive = start_instance("blue-1")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", f"http://127.0.0.1:{free_port()}", alive)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=2) and gateway.state.config.table["ep1"].weights)

    statuses = [httpx.post(gateway.score_url("ep1"), json={}, headers=bearer(ep)).status_code for _ in range(20)]

    assert statuses == [200] * 20
    assert alive.scored() == 20


def test_a_killed_instance_fails_no_client_request_when_another_is_ready(start_instance, gateway) -> None:
    first, second = start_instance("blue-0"), start_instance("blue-1")
    ep = make_endpoint("ep1")
    make_deployment(ep, "blue", first, second, max_concurrent_requests_per_instance=8)
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=2) and gateway.state.config.table["ep1"].weights)

    with Load(gateway.score_url("ep1"), bearer(ep), clients=4) as load:
        load.wait_for_answers(40)
        first.stop(signal.SIGKILL)  # its Instance row still says ready: nobody has told the gateway
        killed_at = time.monotonic()
        load.wait_for_answers(len(load.shots) + 40)

    assert load.failures() == []
    after = [shot for shot in load.shots if shot.sent > killed_at]
    assert len(after) > 20
    assert {shot.status for shot in after} == {200}
    assert '"blue-1"' in after[-1].body

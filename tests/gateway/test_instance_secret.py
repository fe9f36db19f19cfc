"""The gateway sends each instance its secret: an instance started with one answers the gateway, not a bypass."""

from __future__ import annotations

from typing import Any

import httpx
from django.conf import settings

from apps.endpoints.models import Instance
from gateway.wire import instance_secret
from tests import factories
from tests.gateway.conftest import bearer, free_port, make_endpoint, routing_changed, set_traffic


def test_the_gateway_sends_the_instance_secret_and_a_direct_call_is_refused(start_instance: Any, gateway: Any) -> None:
    endpoint = make_endpoint("ep1")
    deployment = factories.deployment(endpoint, "blue")
    # The secret the local backend gives this run of the instance (derived from SECRET_KEY, its name and port).
    port = free_port()
    secret = instance_secret(settings.SECRET_KEY, deployment_uid=str(deployment.uid), instance="blue-0", port=port)
    instance = start_instance("blue-0", env={"STUDIO_INSTANCE_SECRET": secret}, port=port)
    Instance.objects.create(
        deployment=deployment, name="blue-0", address=instance.address, state=Instance.State.READY, ready=True
    )
    routing_changed()
    set_traffic(endpoint, {"blue": 100})
    gateway.wait_for(lambda: gateway.knows("ep1", "blue", instances=1))

    answer = httpx.post(gateway.score_url("ep1"), json={"x": 1}, headers=bearer(endpoint), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["azureml-model-deployment"] == "blue"

    direct = httpx.post(f"{instance.address}/score", json={"x": 1}, timeout=10)
    assert direct.status_code == 403
    forged = httpx.post(
        gateway.score_url("ep1"),
        json={"x": 1},
        headers={**bearer(endpoint), "x-studio-instance-secret": "forged"},
        timeout=10,
    )
    assert forged.status_code == 200  # a client's own header is dropped; the gateway sends the real one

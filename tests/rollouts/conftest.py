"""Rollout fixtures: an endpoint with a serving baseline (blue) and a succeeded target (green)."""

from __future__ import annotations

from typing import Any

import pytest

from apps.endpoints import services
from apps.endpoints.models import Deployment, Endpoint, ProvisioningState
from tests import factories


@pytest.fixture
def ep(db: None) -> Endpoint:
    endpoint = factories.endpoint("ep1")
    factories.deployment(endpoint, "blue")
    factories.deployment(endpoint, "green")
    Deployment.objects.filter(endpoint=endpoint).update(state=ProvisioningState.SUCCEEDED)
    return services.traffic_set(endpoint=endpoint, traffic={"blue": 100, "green": 0})


def traffic(name: str = "ep1") -> tuple[dict[str, Any], dict[str, Any]]:
    endpoint = Endpoint.objects.get(name=name)
    return endpoint.traffic, endpoint.mirror_traffic

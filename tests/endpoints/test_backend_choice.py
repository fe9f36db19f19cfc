"""Which backend runs a deployment: the studio's default, unless the YAML says Kubernetes."""

from __future__ import annotations

import pytest

from apps.endpoints.backends import get_backend
from apps.endpoints.backends.kubernetes import KubernetesBackend
from apps.endpoints.backends.local import LocalBackend
from apps.endpoints.specs import deployment_backend_kind
from tests import factories

pytestmark = pytest.mark.django_db


def test_managed_deployment_runs_on_the_default_backend(settings) -> None:  # type: ignore[no-untyped-def]
    deployment = factories.deployment(factories.endpoint())
    assert deployment_backend_kind(deployment) == "local"
    assert isinstance(get_backend(deployment_backend_kind(deployment)), LocalBackend)
    settings.STUDIO_BACKEND = "kubernetes"
    assert deployment_backend_kind(deployment) == "kubernetes"


def test_kubernetes_deployment_type_runs_on_kubernetes() -> None:
    deployment = factories.deployment(factories.endpoint(), type="kubernetes")
    assert deployment_backend_kind(deployment) == "kubernetes"
    assert isinstance(get_backend(deployment_backend_kind(deployment)), KubernetesBackend)


def test_endpoint_on_a_kubernetes_compute_runs_its_deployments_there() -> None:
    endpoint = factories.endpoint(compute="azureml:k8s-cluster")
    deployment = factories.deployment(endpoint)
    assert deployment_backend_kind(deployment) == "kubernetes"

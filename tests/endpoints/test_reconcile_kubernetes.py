"""The reconcile loop driving the Kubernetes backend (real client, fake API server): the same states,
instances and timeline as with the local backend.
"""

from __future__ import annotations

from typing import Any

import pytest

from apps.endpoints import reconcile
from apps.endpoints.backends.kubernetes import KubernetesBackend
from apps.endpoints.backends.manifests import object_name
from apps.endpoints.logs import deployment_logs
from apps.endpoints.models import Instance
from apps.endpoints.specs import deployment_spec
from tests import factories
from tests.kubernetes.conftest import backend, cluster  # noqa: F401 (fixtures)
from tests.kubernetes.fakeapi import FakeCluster
from tests.kubernetes.test_backend import event, run_pod

pytestmark = pytest.mark.django_db


def test_pods_becoming_ready_make_the_deployment_succeed_with_routable_instances(
    backend: KubernetesBackend,  # noqa: F811
    cluster: FakeCluster,  # noqa: F811
    settings: Any,
) -> None:
    settings.STUDIO_BACKEND = "kubernetes"
    deployment = factories.deployment(factories.endpoint("ep1"), "blue")
    assert reconcile.reconcile(deployment.pk, backend=backend) == "Creating"
    name = object_name(deployment_spec(deployment))
    assert cluster.get("Deployment", name) is not None
    deployment.refresh_from_db()
    assert deployment.observed_generation == deployment.generation

    pod = f"{name}-7d9f-abcde"
    run_pod(cluster, pod, deployment=name, ip="10.1.0.7")
    event(cluster, pod, "Pulled", "Container image already present on machine", type="Normal")
    assert reconcile.reconcile(deployment.pk, backend=backend) == "Succeeded"
    row = Instance.objects.get(deployment=deployment)
    assert (row.name, row.ready, row.address) == (pod, True, "http://10.1.0.7:5001")
    # Pod events land on the timeline once, however many passes see them.
    reconcile.reconcile(deployment.pk, backend=backend)
    assert deployment.events.filter(reason="Pulled", instance=pod).count() == 1
    assert deployment.instance_runs.count() == 1
    # get-logs reads the pod's container log through the API server.
    cluster.set_log(pod, "inference-server", "line 1\nWorker with pid 7 ready for serving traffic\n")
    text = deployment_logs(deployment=deployment, container="inference-server", lines=1)
    assert text.strip() == "Worker with pid 7 ready for serving traffic"

    assert reconcile.delete(deployment.pk, backend=backend)
    cluster.collect_garbage()  # foreground deletion: the controllers remove it once its pods are gone
    assert cluster.get("Deployment", name) is None
    assert not Instance.objects.filter(name=pod).exists()

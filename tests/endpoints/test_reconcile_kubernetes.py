"""The reconcile loop driving the Kubernetes backend (real client, fake API server): the same states,
instances and timeline as with the local backend, decided by the objects that decide them on a cluster.
"""

from __future__ import annotations

from typing import Any

import pytest

from apps.costs.models import InstanceRun
from apps.endpoints import reconcile
from apps.endpoints.backends.kubernetes import KubernetesBackend
from apps.endpoints.backends.manifests import object_name
from apps.endpoints.logs import deployment_logs
from apps.endpoints.models import Deployment, DeploymentEvent, Instance
from apps.endpoints.specs import deployment_spec
from tests import factories
from tests.kubernetes.conftest import backend, cluster  # noqa: F401 (fixtures)
from tests.kubernetes.fakeapi import FakeCluster
from tests.kubernetes.test_backend import event, run_pod

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_kubernetes(settings: Any) -> None:
    settings.STUDIO_BACKEND = "kubernetes"


def test_pods_becoming_ready_make_the_deployment_succeed_with_routable_instances(
    backend: KubernetesBackend,  # noqa: F811
    cluster: FakeCluster,  # noqa: F811
    on_kubernetes: None,
) -> None:
    deployment = factories.deployment(factories.endpoint("ep1"), "blue")
    assert reconcile.reconcile(deployment.pk, backend=backend) == "Creating"
    name = object_name(deployment_spec(deployment))
    assert cluster.get("Deployment", name) is not None
    deployment.refresh_from_db()
    assert deployment.observed_generation == deployment.generation

    pod = f"{name}-7d9f-abcde"
    run_pod(cluster, pod, deployment=name, ip="10.1.0.7")
    event(cluster, pod, "Pulled", "Container image already present on machine", type="Normal")
    # The pod is ready, but the Deployment controller has not reported the rollout yet.
    assert reconcile.reconcile(deployment.pk, backend=backend) == "Creating"
    cluster.run_deployment_controller(name)
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


def test_an_autoscaled_deployment_succeeds_only_when_every_replica_runs_the_new_version(
    backend: KubernetesBackend,  # noqa: F811
    cluster: FakeCluster,  # noqa: F811
    on_kubernetes: None,
) -> None:
    """Finding 5: with an HPA, "Succeeded" came while most replicas still ran the old version."""
    scale = {"type": "target_utilization", "min_instances": 1, "max_instances": 5}
    deployment = factories.deployment(factories.endpoint("ep1"), "blue", scale_settings=scale)
    reconcile.reconcile(deployment.pk, backend=backend)
    name = object_name(deployment_spec(deployment))
    cluster.update("Deployment", name, {"spec": {"replicas": 3}}, manager="kube-controller-manager")
    run_pod(cluster, f"{name}-a", deployment=name)
    cluster.run_deployment_controller(name)

    assert reconcile.reconcile(deployment.pk, backend=backend) == "Creating"

    run_pod(cluster, f"{name}-b", deployment=name, ip="10.1.0.8")
    run_pod(cluster, f"{name}-c", deployment=name, ip="10.1.0.9")
    cluster.run_deployment_controller(name)
    assert reconcile.reconcile(deployment.pk, backend=backend) == "Succeeded"
    assert deployment.events.filter(reason="Ready", message__startswith="3 of 3 instances ready").exists()


def test_a_repeated_event_is_one_timeline_row_with_its_count(
    backend: KubernetesBackend,  # noqa: F811
    cluster: FakeCluster,  # noqa: F811
    on_kubernetes: None,
) -> None:
    """Finding 5: each "(xN)" increment of a repeated event used to add a timeline row."""
    deployment = factories.deployment(factories.endpoint("ep1"), "blue")
    reconcile.reconcile(deployment.pk, backend=backend)
    name = object_name(deployment_spec(deployment))
    pod = f"{name}-a"
    run_pod(cluster, pod, deployment=name, ready=False)
    for count in (1, 2, 7):
        event(cluster, pod, "Unhealthy", "Readiness probe failed: connection refused", count=count)
        reconcile.reconcile(deployment.pk, backend=backend)

    rows = list(DeploymentEvent.objects.filter(deployment=deployment, reason="Unhealthy").values_list("message"))
    assert rows == [("Readiness probe failed: connection refused (x7)",)]


def test_a_pod_waiting_for_a_node_or_evicted_accrues_no_cost(
    backend: KubernetesBackend,  # noqa: F811
    cluster: FakeCluster,  # noqa: F811
    on_kubernetes: None,
) -> None:
    """Finding 5: Pending and Evicted pods accrued cost."""
    deployment = factories.deployment(factories.endpoint("ep1"), "blue")
    reconcile.reconcile(deployment.pk, backend=backend)
    name = object_name(deployment_spec(deployment))
    pod = f"{name}-a"
    run_pod(cluster, pod, deployment=name, scheduled=False, scheduling_message="0/3 nodes are available")
    reconcile.reconcile(deployment.pk, backend=backend)
    assert not InstanceRun.objects.filter(deployment=deployment).exists()

    run_pod(cluster, pod, deployment=name)
    reconcile.reconcile(deployment.pk, backend=backend)
    assert InstanceRun.objects.filter(deployment=deployment, stopped_at__isnull=True).count() == 1

    run_pod(cluster, pod, deployment=name, evicted=True)
    reconcile.reconcile(deployment.pk, backend=backend)
    assert InstanceRun.objects.filter(deployment=deployment, stopped_at__isnull=True).count() == 0
    assert InstanceRun.objects.filter(deployment=deployment).count() == 1


def test_a_deployment_scaled_by_hand_is_scaled_back_by_the_next_pass(
    backend: KubernetesBackend,  # noqa: F811
    cluster: FakeCluster,  # noqa: F811
    on_kubernetes: None,
) -> None:
    """Finding 1: once its generation was applied, a Kubernetes deployment was never applied again."""
    deployment = factories.deployment(factories.endpoint("ep1"), "blue", instance_count=2)
    reconcile.reconcile(deployment.pk, backend=backend)
    name = object_name(deployment_spec(deployment))
    cluster.update("Deployment", name, {"spec": {"replicas": 0}}, manager="kubectl")

    reconcile.observe(deployment.pk, backend=backend)

    assert cluster.get("Deployment", name)["spec"]["replicas"] == 2


def test_with_a_controller_leading_the_sweep_observes_kubernetes_deployments_only_on_resync(
    on_kubernetes: None, settings: Any
) -> None:
    """Finding 8: every 2 s one sweep walked every deployment; with watches, only the resync remains."""
    settings.STUDIO_KUBE_RESYNC_S = 300
    deployment = factories.deployment(factories.endpoint("ep1"), "blue")
    Deployment.objects.filter(pk=deployment.pk).update(observed_generation=deployment.generation)
    reconcile.controller_leading(ttl_s=30)
    try:
        first = reconcile.periodic_work(queued_ttl_s=30)
        reconcile.release_queued(deployment.pk)
        second = reconcile.periodic_work(queued_ttl_s=30)
    finally:
        reconcile.controller_stepped_down()
        reconcile.release_queued(deployment.pk)

    assert first == [("observe", deployment.pk)]
    assert second == []

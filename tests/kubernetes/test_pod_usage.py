"""CPU and memory of Kubernetes pods, read from the metrics API (metrics.k8s.io PodMetrics) into the
instance samples the monitoring charts show, through the real client against the fake API server.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.conf import settings

from apps.endpoints import reconcile
from apps.endpoints.backends import kubernetes
from apps.endpoints.backends.base import InstanceUsage
from apps.endpoints.backends.kubernetes import KubernetesBackend, usage_from
from apps.endpoints.backends.local import state
from apps.endpoints.backends.local.state import InstanceState
from apps.endpoints.backends.manifests import object_name
from apps.endpoints.models import Deployment, Instance
from apps.endpoints.specs import deployment_spec
from apps.monitoring import tasks
from apps.monitoring.models import InstanceSample
from tests import factories
from tests.kubernetes.fakeapi import FakeCluster
from tests.kubernetes.test_backend import run_pod

pytestmark = pytest.mark.django_db

GIB = 1024**3


@pytest.fixture(autouse=True)
def _fresh_log_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each fake API server is told about once; a port the OS hands out again must not look already told."""
    monkeypatch.setattr(kubernetes, "_no_metrics_logged", set())


@pytest.fixture
def local_process() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time\ntime.sleep(30)\n"])
    yield process
    process.kill()
    process.wait(timeout=10)


def running_on_kubernetes(backend: KubernetesBackend, cluster: FakeCluster, pods: list[str]) -> Deployment:
    """A Kubernetes deployment (Standard_DS2_v2: 2 vCPUs, 7 GiB) whose pods the reconcile loop has seen."""
    deployment = factories.deployment(factories.endpoint("ep-k8s"), "blue", type="kubernetes")
    reconcile.reconcile(deployment.pk, backend=backend)
    name = object_name(deployment_spec(deployment))
    for index, pod in enumerate(pods):
        run_pod(cluster, pod, deployment=name, ip=f"10.1.0.{index + 7}")
    reconcile.reconcile(deployment.pk, backend=backend)
    assert sorted(Instance.objects.filter(deployment=deployment).values_list("name", flat=True)) == sorted(pods)
    return deployment


def running_locally(deployment: Deployment, name: str, pid: int) -> None:
    """A local instance as the local backend records it: its Instance row and its own state file."""
    Instance.objects.create(deployment=deployment, name=name, pid=pid, state=Instance.State.READY)
    try:
        created: float | None = psutil.Process(pid).create_time()
    except psutil.Error:
        created = None
    record = InstanceState(name=name, index=0, template="t", generation=1, pid=pid, create_time=created, ready=True)
    state.save(Path(settings.STUDIO_INSTANCES_DIR) / str(deployment.uid), record)


def samples() -> dict[str, tuple[float | None, int, float | None]]:
    return {s.instance: (s.cpu_percent, s.memory_bytes, s.memory_percent) for s in InstanceSample.objects.all()}


def test_each_pod_is_sampled_with_its_containers_usage_summed(backend: KubernetesBackend, cluster: FakeCluster) -> None:
    pods = ["my-endpoint-blue-7d9f-aaaaa", "my-endpoint-blue-7d9f-bbbbb", "my-endpoint-blue-7d9f-ccccc"]
    deployment = running_on_kubernetes(backend, cluster, pods)
    cluster.install_metrics_server()
    cluster.pod_metrics(pods[0], {"inference-server": ("1", "1Gi"), "proxy": ("250m", "1000Ki")})
    cluster.pod_metrics(
        pods[1],
        {"inference-server": ("500m", "1G"), "proxy": ("1500u", "128Mi"), "logger": ("123456n", "123456")},
    )
    # pods[2] is too new for metrics-server's first window: no reading, no sample.

    assert tasks.instances_sample() == 2

    first = GIB + 1000 * 1024
    second = 10**9 + 128 * 1024**2 + 123456
    assert samples() == {
        pods[0]: (62.5, first, round(100 * first / (7 * GIB), 2)),  # 1.25 of the DS2's 2 cores
        pods[1]: (25.08, second, round(100 * second / (7 * GIB), 2)),  # 0.501623456 cores
    }
    assert {s.endpoint for s in InstanceSample.objects.all()} == {deployment.endpoint.name}
    assert {s.deployment for s in InstanceSample.objects.all()} == {"blue"}
    metrics_calls = [call for call in cluster.calls if call.kind == "PodMetrics"]
    assert [call.params.get("labelSelector") for call in metrics_calls] == [
        f"studio.ml/deployment-uid={deployment.uid}"
    ]


@pytest.mark.parametrize("answer", ["not installed (404)", "installed but not answering (503)"])
def test_without_a_metrics_api_pods_are_not_sampled_and_local_instances_still_are(
    backend: KubernetesBackend,
    cluster: FakeCluster,
    local_process: subprocess.Popen[bytes],
    caplog: pytest.LogCaptureFixture,
    answer: str,
) -> None:
    running_on_kubernetes(backend, cluster, ["my-endpoint-blue-7d9f-aaaaa"])
    local = factories.deployment(factories.endpoint("ep-local"), "green")
    running_locally(local, "green-1", local_process.pid)
    if "503" in answer:
        cluster.install_metrics_server()
        for _ in range(2):
            cluster.fail_next(
                503, "the server is currently unable to handle the request", method="GET", kind="PodMetrics"
            )

    with caplog.at_level(logging.INFO, logger="apps.endpoints.backends.kubernetes"):
        assert tasks.instances_sample() == 1
        assert tasks.instances_sample() == 1

    assert set(InstanceSample.objects.values_list("instance", flat=True)) == {"green-1"}
    assert InstanceSample.objects.filter(instance="green-1").count() == 2
    said = [r for r in caplog.records if "metrics API is not served" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO


def test_a_role_without_the_metrics_permission_is_named_once_and_nothing_fails(
    backend: KubernetesBackend, cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    running_on_kubernetes(backend, cluster, ["my-endpoint-blue-7d9f-aaaaa"])
    cluster.install_metrics_server()
    for _ in range(2):
        cluster.fail_next(403, "pods.metrics.k8s.io is forbidden", method="GET", kind="PodMetrics")

    with caplog.at_level(logging.INFO, logger="apps.endpoints.backends.kubernetes"):
        assert tasks.instances_sample() == 0
        assert tasks.instances_sample() == 0

    assert not InstanceSample.objects.exists()
    said = [r for r in caplog.records if "pods.metrics.k8s.io" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert "deploy/kubernetes/rbac.yaml" in said[0].getMessage()


def test_an_unreachable_cluster_does_not_stop_local_sampling(
    backend: KubernetesBackend, cluster: FakeCluster, local_process: subprocess.Popen[bytes], settings: Any
) -> None:
    running_on_kubernetes(backend, cluster, ["my-endpoint-blue-7d9f-aaaaa"])
    local = factories.deployment(factories.endpoint("ep-local"), "green")
    running_locally(local, "green-1", local_process.pid)
    # The kubeconfig now points the studio at an address where no API server listens.
    cluster.write_kubeconfig(Path(settings.STUDIO_KUBECONFIG), extra_context="down")
    settings.STUDIO_KUBE_CONTEXT = "down"

    assert tasks.instances_sample() == 1

    assert list(InstanceSample.objects.values_list("instance", flat=True)) == ["green-1"]


@pytest.mark.parametrize(
    ("cpu", "cores"),
    [("250m", 0.25), ("1", 1.0), ("123456n", 0.000123456), ("1500u", 0.0015), ("2.5", 2.5)],
)
def test_cpu_quantities_are_read_as_cores(cpu: str, cores: float) -> None:
    usage = usage_from([{"metadata": {"name": "pod"}, "containers": [{"name": "c", "usage": {"cpu": cpu}}]}])
    assert list(usage) == ["pod"]
    assert usage["pod"].cpu_cores == pytest.approx(cores, rel=1e-12)
    assert usage["pod"].memory_bytes == 0


@pytest.mark.parametrize(
    ("memory", "size"),
    [("128Mi", 128 * 2**20), ("1Gi", 2**30), ("1000Ki", 1_024_000), ("123456", 123456), ("1G", 10**9)],
)
def test_memory_quantities_are_read_as_bytes(memory: str, size: int) -> None:
    usage = usage_from([{"metadata": {"name": "pod"}, "containers": [{"name": "c", "usage": {"memory": memory}}]}])
    assert usage == {"pod": InstanceUsage(cpu_cores=0.0, memory_bytes=size)}

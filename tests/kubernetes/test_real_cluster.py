"""The whole flow against a real cluster: opt-in, run only when KUBECONFIG names one.

    KUBECONFIG=~/.kube/config .venv/bin/pytest -m k8s tests/kubernetes/test_real_cluster.py

Each test works in a namespace of its own (created and deleted here). The served images come from
Docker Hub; the storage-initializer runs on the runtime image (deploy/runtime.Dockerfile), named by
STUDIO_TEST_KUBE_RUNTIME_IMAGE when the default is not pullable from the cluster (a kind cluster:
`kind load docker-image`). Without KUBECONFIG every test is reported as skipped, never as passed.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from apps.endpoints.backends.base import EnvironmentSpec, Observed, ProbeSpec
from apps.endpoints.backends.kubernetes import KubernetesBackend
from apps.endpoints.backends.manifests import ManifestOptions
from tests.kubernetes.specs import custom_container_spec

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs a real Kubernetes cluster: set KUBECONFIG"),
]

WAIT_S = float(os.environ.get("STUDIO_TEST_KUBE_WAIT_S", "240"))
RUNTIME_IMAGE = os.environ.get("STUDIO_TEST_KUBE_RUNTIME_IMAGE") or ManifestOptions.runtime_image


@pytest.fixture
def backend(settings: Any) -> Iterator[KubernetesBackend]:
    """The backend on a fresh namespace of the KUBECONFIG cluster, deleted afterwards."""
    from kubernetes import client  # noqa: TID251 (namespace set-up for the test only)

    settings.STUDIO_KUBECONFIG = os.environ["KUBECONFIG"]
    settings.STUDIO_KUBE_CONTEXT = os.environ.get("STUDIO_KUBE_CONTEXT", "")
    namespace = f"studio-test-{uuid.uuid4().hex[:8]}"
    backend = KubernetesBackend(
        namespace=namespace, options=lambda spec: ManifestOptions(namespace=namespace, runtime_image=RUNTIME_IMAGE)
    )
    core = client.CoreV1Api(backend.api_client)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    try:
        yield backend
    finally:
        core.delete_namespace(namespace, propagation_policy="Foreground")


def nginx_spec(**changes: Any) -> Any:
    """A custom container that serves `GET /` on port 80: ready in seconds on any cluster."""
    environment = EnvironmentSpec(
        name="nginx",
        version="1",
        image="docker.io/library/nginx:1.27-alpine",
        conda_file=None,
        pip_requirements="",
        spec_hash="nginx",
        inference_config={
            "liveness_route": {"port": 80, "path": "/"},
            "readiness_route": {"port": 80, "path": "/"},
            "scoring_route": {"port": 80, "path": "/"},
        },
    )
    spec = custom_container_spec(
        uid=str(uuid.uuid4()),
        environment=environment,
        model_asset=None,
        resources={"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
        readiness_probe=ProbeSpec(initial_delay=1, period=2),
        liveness_probe=ProbeSpec(initial_delay=5, period=5, failure_threshold=3),
    )
    return replace(spec, **changes)


def wait_for(observe: Callable[[], Observed], done: Callable[[Observed], bool]) -> Observed:
    """Poll until `done` (bounded by STUDIO_TEST_KUBE_WAIT_S); the last observation either way."""
    deadline = time.monotonic() + WAIT_S
    observed = observe()
    while not done(observed) and time.monotonic() < deadline:
        time.sleep(2)
        observed = observe()
    return observed


def test_a_deployment_becomes_ready_scales_and_is_deleted(backend: KubernetesBackend) -> None:
    spec = nginx_spec()
    backend.apply(spec)
    observed = wait_for(lambda: backend.observe(spec), lambda o: o.ready_count == 1)
    assert observed.ready_count == 1, observed
    assert observed.instances[0].address.startswith("http://")
    assert any(event.reason in ("Scheduled", "Pulled", "Started") for event in observed.events)

    scaled = replace(spec, instance_count=2, generation=spec.generation + 1)
    backend.apply(scaled)
    assert wait_for(lambda: backend.observe(scaled), lambda o: o.ready_count == 2).ready_count == 2

    assert backend.apply(scaled).failed_reason == ""  # applying again is a no-op
    log = backend.logs(scaled, container="storage-initializer", lines=10)
    assert "(no log" not in log

    backend.delete(scaled)
    gone = wait_for(lambda: backend.observe(scaled), lambda o: not o.instances)
    assert gone.instances == ()


def test_a_missing_image_is_reported_as_image_pull_backoff(backend: KubernetesBackend) -> None:
    environment = replace(nginx_spec().environment, image="registry.invalid/studio/none:0")
    spec = nginx_spec(environment=environment)
    backend.apply(spec)

    observed = wait_for(lambda: backend.observe(spec), lambda o: bool(o.failed_reason))

    assert observed.failed_reason == "ImagePullLoopBackOff", observed
    assert "registry.invalid/studio/none:0" in observed.failed_message


def test_a_size_no_node_has_is_reported_as_unschedulable(backend: KubernetesBackend) -> None:
    spec = nginx_spec(resources={"requests": {"cpu": "512", "memory": "64Mi"}, "limits": {"cpu": "512"}})
    backend.apply(spec)

    observed = wait_for(lambda: backend.observe(spec), lambda o: bool(o.failed_reason))

    assert observed.failed_reason == "PodUnschedulable", observed
    assert "Insufficient cpu" in observed.failed_message


def test_the_real_api_server_accepts_every_manifest_the_studio_renders(backend: KubernetesBackend) -> None:
    autoscaled = nginx_spec(scale_settings={"type": "target_utilization", "min_instances": 1, "max_instances": 3})
    assert backend.apply(autoscaled).failed_reason == ""

"""The whole flow against a real cluster: opt-in, run only when KUBECONFIG names one.

    KUBECONFIG=~/.kube/config .venv/bin/pytest -m k8s tests/kubernetes/test_real_cluster.py

Each test works in a namespace of its own (created and deleted here). The served images come from public
registries; the `studio-runtime` and `storage-initializer` init containers run on the runtime image
(deploy/runtime.Dockerfile), named by STUDIO_TEST_KUBE_RUNTIME_IMAGE when the default is not pullable from
the cluster (a kind cluster: `kind load docker-image`).

The tests that serve a real score.py also need the cluster's pods to reach this test run's studio, for the
model and code downloads: run pytest-django's live server on an address the pods can reach and name it,

    STUDIO_TEST_KUBE_STUDIO_URL=http://172.18.0.1:8765 KUBECONFIG=... \\
        .venv/bin/pytest -m k8s --liveserver 0.0.0.0:8765 tests/kubernetes/test_real_cluster.py

(172.18.0.1: the host as a kind cluster's nodes see it). They score through the Service via the API
server's proxy: the studio's gateway forwards to pod IPs, which only a gateway inside the cluster reaches
(deploy/kubernetes). STUDIO_TEST_KUBE_LIFETIME_S (default 120) is how long the scale-out test waits after
the apply, standing in for the six hours after which the old signed URLs expired.

Without KUBECONFIG every test is reported as skipped, never as passed; without STUDIO_TEST_KUBE_STUDIO_URL
the serving tests are too.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from apps.endpoints import services
from apps.endpoints.backends.base import EnvironmentSpec, Observed, ProbeSpec
from apps.endpoints.backends.kubernetes import KubernetesBackend
from apps.endpoints.backends.manifests import ManifestOptions, object_name, options_from_settings
from apps.endpoints.specs import deployment_spec
from tests import factories
from tests.kubernetes.specs import custom_container_spec

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs a real Kubernetes cluster: set KUBECONFIG"),
]

WAIT_S = float(os.environ.get("STUDIO_TEST_KUBE_WAIT_S", "300"))
LIFETIME_S = float(os.environ.get("STUDIO_TEST_KUBE_LIFETIME_S", "120"))
RUNTIME_IMAGE = os.environ.get("STUDIO_TEST_KUBE_RUNTIME_IMAGE") or ManifestOptions.runtime_image
STUDIO_URL = os.environ.get("STUDIO_TEST_KUBE_STUDIO_URL", "")
AZURE_IMAGE = os.environ.get(
    "STUDIO_TEST_KUBE_AZURE_IMAGE", "mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu-inference:latest"
)
serving = pytest.mark.skipif(
    not STUDIO_URL, reason="needs the cluster's pods to reach this studio: set STUDIO_TEST_KUBE_STUDIO_URL"
)


@pytest.fixture
def namespace(settings: Any) -> Iterator[str]:
    """A fresh namespace of the KUBECONFIG cluster, deleted afterwards."""
    from kubernetes import client  # namespace set-up for the test only

    settings.STUDIO_KUBECONFIG = os.environ["KUBECONFIG"]
    settings.STUDIO_KUBE_CONTEXT = os.environ.get("STUDIO_KUBE_CONTEXT", "")
    name = f"studio-test-{uuid.uuid4().hex[:8]}"
    settings.STUDIO_KUBE_NAMESPACE = name
    core = client.CoreV1Api(KubernetesBackend(namespace=name).api_client)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Foreground")


@pytest.fixture
def backend(namespace: str) -> KubernetesBackend:
    """The backend on the test's namespace, with manifests that name no studio (nothing to download)."""
    return KubernetesBackend(
        namespace=namespace,
        options=lambda spec, previous: ManifestOptions(namespace=namespace, runtime_image=RUNTIME_IMAGE),
    )


@pytest.fixture
def studio_backend(namespace: str, settings: Any) -> KubernetesBackend:
    """The backend as the studio runs it: download credentials for this test run's studio."""
    settings.STUDIO_KUBE_STUDIO_URL = STUDIO_URL
    settings.STUDIO_KUBE_RUNTIME_IMAGE = RUNTIME_IMAGE
    return KubernetesBackend(namespace=namespace)


def nginx_spec(**changes: Any) -> Any:
    """A custom container that serves `GET /` on port 8080 as a non-root user: ready in seconds on any cluster."""
    environment = EnvironmentSpec(
        name="nginx",
        version="1",
        image="docker.io/nginxinc/nginx-unprivileged:1.27-alpine",
        conda_file=None,
        pip_requirements="",
        spec_hash="nginx",
        inference_config={
            "liveness_route": {"port": 8080, "path": "/"},
            "readiness_route": {"port": 8080, "path": "/"},
            "scoring_route": {"port": 8080, "path": "/"},
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


def complete(count: int) -> Callable[[Observed], bool]:
    return lambda o: bool(o.rollout_complete) and o.ready_count >= count and not o.failed_reason


def score(backend: KubernetesBackend, spec: Any, body: dict[str, Any]) -> Any:
    """POST /score to the deployment's Service through the API server's proxy."""
    from kubernetes import client  # the test reaches the Service the way kubectl proxy would

    core = client.CoreV1Api(backend.api_client)
    answer = core.connect_post_namespaced_service_proxy_with_path(
        f"{object_name(spec)}:80", backend.namespace, "score", body=json.dumps(body)
    )
    return json.loads(answer) if isinstance(answer, str) else answer


# --- the backend alone ---


def test_a_deployment_becomes_ready_scales_and_is_deleted(backend: KubernetesBackend) -> None:
    spec = nginx_spec()
    backend.apply(spec)
    observed = wait_for(lambda: backend.observe(spec), complete(1))
    assert observed.ready_count == 1 and observed.rollout_complete, observed
    assert observed.instances[0].address.startswith("http://")

    scaled = replace(spec, instance_count=2, generation=spec.generation + 1)
    backend.apply(scaled)
    assert wait_for(lambda: backend.observe(scaled), complete(2)).ready_count == 2

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


def test_a_size_no_node_has_waits_and_then_fails_as_unschedulable(backend: KubernetesBackend) -> None:
    spec = nginx_spec(resources={"requests": {"cpu": "512", "memory": "64Mi"}, "limits": {"cpu": "512"}})
    backend.apply(spec)

    pending = wait_for(lambda: backend.observe(spec), lambda o: bool(o.instances))
    assert pending.failed_reason == "" and pending.instances[0].state == "Pending"
    assert "Insufficient cpu" in pending.instances[0].message


def test_the_real_api_server_accepts_every_manifest_the_studio_renders(backend: KubernetesBackend) -> None:
    autoscaled = nginx_spec(scale_settings={"type": "target_utilization", "min_instances": 2, "max_instances": 3})
    assert backend.apply(autoscaled).failed_reason == ""


def test_switching_to_autoscaling_keeps_the_replica_count(backend: KubernetesBackend) -> None:
    from kubernetes import client  # reads the live object

    spec = nginx_spec(instance_count=3)
    backend.apply(spec)
    autoscaled = replace(
        spec, generation=spec.generation + 1, scale_settings={"type": "target_utilization", "max_instances": 5}
    )
    backend.apply(autoscaled)
    live = client.AppsV1Api(backend.api_client).read_namespaced_deployment(object_name(spec), backend.namespace)
    assert live.spec.replicas == 3


# --- the studio's flow: real runtime, downloads from this test run's studio ---


@pytest.fixture
def azure_deployment(transactional_db: None) -> Callable[..., Any]:
    def make(endpoint: str, name: str = "blue", *, score_py: str = factories.SCORE_PY) -> Any:
        environment = factories.environment(f"azure-{uuid.uuid4().hex[:6]}", image=AZURE_IMAGE)
        code = factories.upload_folder({"score.py": score_py})
        ep = factories.endpoint(endpoint)
        return factories.deployment(
            ep,
            name,
            code=code,
            environment=f"azureml:{environment.name}@latest",
            instance_type="Standard_DS1_v2",
        )

    return make


@serving
def test_an_azure_base_image_serves_score_py_and_pods_added_later_still_start(
    studio_backend: KubernetesBackend, azure_deployment: Callable[..., Any]
) -> None:
    row = azure_deployment("azure-ep")
    spec = deployment_spec(row)
    assert studio_backend.apply(spec).failed_reason == ""
    assert wait_for(lambda: studio_backend.observe(spec), complete(1)).rollout_complete
    assert score(studio_backend, spec, {"data": [1, 2]}) is not None

    time.sleep(LIFETIME_S)  # the old signed URLs would have expired by now (with a lifetime this short)
    scaled = replace(spec, instance_count=2, generation=spec.generation + 1)
    studio_backend.apply(scaled)
    observed = wait_for(lambda: studio_backend.observe(scaled), complete(2))
    assert observed.ready_count == 2 and observed.failed_reason == "", observed


@serving
def test_changing_only_the_code_rolls_the_pods(
    studio_backend: KubernetesBackend, azure_deployment: Callable[..., Any]
) -> None:
    row = azure_deployment("roll-ep", score_py=factories.SCORE_PY)
    spec = deployment_spec(row)
    studio_backend.apply(spec)
    first = wait_for(lambda: studio_backend.observe(spec), complete(1))
    old_pods = {i.name for i in first.instances}

    code = factories.upload_folder({"score.py": factories.SCORE_PY.replace("def run", "VERSION = 2\n\ndef run")})
    row = services.deployment_update(
        deployment=row, changes={"code_configuration": {"code": f"upload:{code.uid}", "scoring_script": "score.py"}}
    )
    new = deployment_spec(row)
    studio_backend.apply(new)
    rolled = wait_for(
        lambda: studio_backend.observe(new), lambda o: complete(1)(o) and not old_pods & {i.name for i in o.instances}
    )
    assert rolled.rollout_complete and not old_pods & {i.name for i in rolled.instances}, rolled


@serving
def test_deleting_one_endpoint_leaves_another_untouched(
    studio_backend: KubernetesBackend, azure_deployment: Callable[..., Any]
) -> None:
    keep = deployment_spec(azure_deployment("keep-ep"))
    drop = deployment_spec(azure_deployment("drop-ep"))
    for spec in (keep, drop):
        studio_backend.apply(spec)
    assert wait_for(lambda: studio_backend.observe(keep), complete(1)).rollout_complete

    studio_backend.delete(drop)

    assert wait_for(lambda: studio_backend.observe(drop), lambda o: not o.instances).instances == ()
    kept = studio_backend.observe(keep)
    assert kept.ready_count == 1 and kept.rollout_complete
    assert options_from_settings(keep).download_token  # its credential is still issued

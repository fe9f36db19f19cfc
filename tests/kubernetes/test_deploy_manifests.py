"""deploy/kubernetes: the manifests that run the studio itself pass the same checks as the builders' output."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.kubernetes.checks import VERSIONS, schema_errors, semantic_problems

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def _documents() -> list[dict]:
    documents = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = set(yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"])
    present = {path.name for path in DEPLOY.glob("*.yaml")} - {"kustomization.yaml", "studio-secrets.example.yaml"}
    assert listed == present


@pytest.mark.parametrize("version", VERSIONS)
def test_studio_manifests_pass_the_strict_official_schema(version: str) -> None:
    errors = [error for doc in _documents() for error in schema_errors(doc, version)]
    assert errors == []


def test_studio_manifests_pass_the_semantic_checks() -> None:
    assert semantic_problems(_documents()) == []


def test_web_gateway_worker_beat_and_controller_are_all_there() -> None:
    deployments = {doc["metadata"]["name"] for doc in _documents() if doc["kind"] == "Deployment"}
    assert deployments == {"studio-web", "studio-gateway", "studio-worker", "studio-beat", "studio-controller"}


def test_the_web_deployment_recreates_its_pod_with_its_read_write_once_volume() -> None:
    """Finding 10: a rolling update started the new pod on another node, which could not attach the volume."""
    web = next(doc for doc in _documents() if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "studio-web")
    claim = next(doc for doc in _documents() if doc["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert web["spec"]["strategy"] == {"type": "Recreate"}


def test_the_backend_may_touch_nothing_in_the_studios_own_namespace() -> None:
    """Finding 6: the Role let the backend delete every Deployment, Service and Secret of the studio's namespace."""
    roles = [doc for doc in _documents() if doc["kind"] == "Role"]
    bindings = [doc for doc in _documents() if doc["kind"] == "RoleBinding"]
    config = next(doc for doc in _documents() if doc["kind"] == "ConfigMap")
    workloads = config["data"]["STUDIO_KUBE_NAMESPACE"]

    assert workloads != "studio"
    assert {role["metadata"]["namespace"] for role in roles} == {workloads}
    assert {binding["metadata"]["namespace"] for binding in bindings} == {workloads}
    namespaces = {doc["metadata"]["name"] for doc in _documents() if doc["kind"] == "Namespace"}
    assert namespaces == {"studio", workloads}


def test_the_role_grants_the_controllers_watches_and_its_lease() -> None:
    role = next(doc for doc in _documents() if doc["kind"] == "Role")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for needed in [
        ("apps", "deployments", "watch"),
        ("", "pods", "watch"),
        ("events.k8s.io", "events", "watch"),
        ("discovery.k8s.io", "endpointslices", "watch"),
        ("coordination.k8s.io", "leases", "update"),
        ("policy", "poddisruptionbudgets", "patch"),
    ]:
        assert needed in granted


def test_the_gateway_outlives_disruptions_with_replicas_a_budget_and_a_probe_without_the_database() -> None:
    docs = _documents()
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler" and d["metadata"]["name"] == "studio-gateway")
    assert hpa["spec"]["minReplicas"] >= 2
    budget = next(d for d in docs if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == "studio-gateway")
    gateway = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "studio-gateway")
    assert budget["spec"]["selector"]["matchLabels"] == gateway["spec"]["selector"]["matchLabels"]
    assert budget["spec"]["minAvailable"] == 1
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"  # gateway/app.py: no database read
    web = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "studio-web")
    probes = web["spec"]["template"]["spec"]["containers"][0]
    # The web pods' probes must not fail because the worker is down: /livez, not /healthz.
    assert probes["livenessProbe"]["httpGet"]["path"] == probes["readinessProbe"]["httpGet"]["path"] == "/livez"

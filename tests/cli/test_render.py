"""`studio online-deployment render`: the Kubernetes manifests of a deployment YAML, printed, never applied."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.endpoints.backends.manifests import parse_quantity
from apps.endpoints.models import Deployment, Model
from tests.cli.conftest import Result, assert_error
from tests.kubernetes.checks import VERSIONS, schema_errors, semantic_problems

pytestmark = pytest.mark.django_db(transaction=True)

Studio = Callable[..., Result]


@pytest.fixture
def ep1(studio: Studio) -> Studio:
    assert studio("online-endpoint", "create", "--name", "ep1", "-f", "endpoint.yml").code == 0
    return studio


def test_render_prints_the_manifests_and_stores_nothing(ep1: Studio) -> None:
    result = ep1(
        "online-deployment", "render", "--name", "blue", "-e", "ep1", "-f", "blue-deployment.yml",
        "--set", "instance_count=3",
    )  # fmt: skip

    assert result.code == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert [doc["kind"] for doc in documents] == [
        "Secret",
        "NetworkPolicy",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ]
    deployment = documents[2]
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["studio-runtime", "storage-initializer"]
    server = pod["containers"][0]
    assert server["name"] == "inference-server"
    assert server["image"] == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"
    assert deployment["metadata"]["labels"]["studio.ml/endpoint"] == "ep1"
    assert not Deployment.objects.exists()
    assert not Model.objects.exists()


def test_render_of_the_basic_azure_deployment_shows_what_a_cluster_needs_and_is_strictly_valid(ep1: Studio) -> None:
    """Issue 20's "must show": uid in every name, digests, the runtime init container, requests below the VM size,
    preStop and a grace period past the request timeout, PDB and spread for several instances; valid for
    Kubernetes 1.30 and the newest version kubernetes-validate knows."""
    result = ep1(
        "online-deployment", "render", "--name", "blue", "-e", "ep1", "-f", "blue-deployment.yml",
        "--set", "instance_count=3",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    kinds = {doc["kind"]: doc for doc in documents}

    names = {doc["metadata"]["name"] for doc in documents}
    (name,) = names
    assert name.startswith("ep1-blue-") and len(name.rsplit("-", 1)[1]) == 8
    template = kinds["Deployment"]["spec"]["template"]
    digests = json.loads(template["metadata"]["annotations"]["studio.ml/digests"])
    assert set(digests) == {"code", "model", "environment"} and all(digests.values())
    pod = template["spec"]
    assert pod["initContainers"][0]["name"] == "studio-runtime"
    server = pod["containers"][0]
    assert server["command"][0] == "/var/studio-runtime/bin/studio-infsrv"
    # Standard_DS3_v2: 4 vCPUs, 14 GiB.
    assert parse_quantity(server["resources"]["requests"]["cpu"]) < 4
    assert parse_quantity(server["resources"]["requests"]["memory"]) < 14 * 1024**3
    assert server["resources"]["limits"] == {"cpu": "4", "memory": "14Gi"}
    assert server["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    assert pod["terminationGracePeriodSeconds"] >= 5 + 5  # Azure's default request timeout is 5 s
    assert "PodDisruptionBudget" in kinds and len(pod["topologySpreadConstraints"]) == 2
    for version in VERSIONS:
        assert [error for doc in documents for error in schema_errors(doc, version)] == [], version
    assert semantic_problems(documents) == []


def test_render_names_the_bad_key_of_the_yaml(ep1: Studio, azure_files) -> None:  # type: ignore[no-untyped-def]
    text = (azure_files / "blue-deployment.yml").read_text()
    (azure_files / "bad.yml").write_text(text + "instance_cuont: 2\n")

    result = ep1("online-deployment", "render", "-e", "ep1", "-f", "bad.yml")

    assert_error(result, "bad.yml: instance_cuont: unknown key")
    assert not Deployment.objects.exists()


def _restricted_problems(pod: dict[str, Any]) -> list[str]:
    """Pod Security Standard "restricted" (v1.30) checks, as the admission controller applies them."""
    problems = []
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        problems.append("host namespaces")
    if any("hostPath" in volume for volume in pod.get("volumes", [])):
        problems.append("hostPath volume")
    pod_context = pod.get("securityContext", {})
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("service account token mounted")
    for container in pod.get("initContainers", []) + pod["containers"]:
        context = container.get("securityContext", {})
        name = container["name"]
        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if context.get("capabilities", {}).get("drop") != ["ALL"] or context.get("capabilities", {}).get("add"):
            problems.append(f"{name}: capabilities not all dropped")
        if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccomp profile {seccomp!r}")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{name}: hostPort")
    return problems


def test_rendered_pods_meet_pod_security_restricted_and_only_the_gateway_reaches_them(ep1: Studio) -> None:
    result = ep1("online-deployment", "render", "--name", "blue", "-e", "ep1", "-f", "blue-deployment.yml")
    assert result.code == 0, result.stderr
    kinds = {doc["kind"]: doc for doc in yaml.safe_load_all(result.stdout)}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert _restricted_problems(pod) == []

    policy = kinds["NetworkPolicy"]
    assert schema_errors(policy, VERSIONS[0]) == []
    assert policy["spec"]["podSelector"]["matchLabels"] == kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "studio"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "gateway"}},
        }
    ]
    server = pod["containers"][0]
    assert rule["ports"] == [{"port": server["ports"][0]["containerPort"], "protocol": "TCP"}]
    gateway_pods = next(
        doc
        for doc in yaml.safe_load_all((Path(__file__).parents[2] / "deploy/kubernetes/gateway.yaml").read_text())
        if doc["kind"] == "Deployment"
    )
    assert gateway_pods["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"

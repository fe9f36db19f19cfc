"""`studio online-deployment render`: the Kubernetes manifests of a deployment YAML, printed, never applied."""

from __future__ import annotations

import json
from collections.abc import Callable

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
    assert [doc["kind"] for doc in documents] == ["Secret", "Deployment", "Service", "PodDisruptionBudget"]
    deployment = documents[1]
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

"""`studio online-deployment render`: the Kubernetes manifests of a deployment YAML, printed, never applied."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml

from apps.endpoints.models import Deployment, Model
from tests.cli.conftest import Result, assert_error

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
    assert [doc["kind"] for doc in documents] == ["Secret", "Deployment", "Service"]
    deployment = documents[1]
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["storage-initializer"]
    server = pod["containers"][0]
    assert server["name"] == "inference-server"
    assert server["image"] == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"
    assert deployment["metadata"]["labels"]["studio.ml/endpoint"] == "ep1"
    assert not Deployment.objects.exists()
    assert not Model.objects.exists()


def test_render_names_the_bad_key_of_the_yaml(ep1: Studio, azure_files) -> None:  # type: ignore[no-untyped-def]
    text = (azure_files / "blue-deployment.yml").read_text()
    (azure_files / "bad.yml").write_text(text + "instance_cuont: 2\n")

    result = ep1("online-deployment", "render", "-e", "ep1", "-f", "bad.yml")

    assert_error(result, "bad.yml: instance_cuont: unknown key")
    assert not Deployment.objects.exists()

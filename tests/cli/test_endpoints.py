"""The Must-show walk of issue 2, through the real `studio` command against a live studio."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.endpoints.models import Deployment, Endpoint, Environment, Model
from tests.cli.conftest import Result, assert_error

pytestmark = pytest.mark.django_db(transaction=True)

Studio = Callable[..., Result]


def test_endpoint_create_from_azure_yaml_with_name_override(studio: Studio) -> None:
    result = studio("online-endpoint", "create", "--name", "ep1", "-f", "endpoint.yml")
    assert result.code == 0, result.stderr
    body = result.json()
    assert body["name"] == "ep1"
    assert body["auth_mode"] == "key"
    assert body["provisioning_state"] == "Succeeded"
    assert Endpoint.objects.filter(name="ep1").exists()
    assert not Endpoint.objects.filter(name="my-endpoint").exists()


def test_deployment_create_uploads_model_code_and_conda_file(studio: Studio) -> None:
    assert studio("online-endpoint", "create", "--name", "ep1", "-f", "endpoint.yml").code == 0
    result = studio(
        "online-deployment", "create", "--name", "blue", "--endpoint-name", "ep1", "-f", "blue-deployment.yml",
        "--no-wait",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    body = result.json()
    assert body["provisioning_state"] == "Creating"
    assert body["endpoint_name"] == "ep1"
    assert body["model"] == "azureml:ep1-blue-model:1"
    deployment = Deployment.objects.get(name="blue", endpoint__name="ep1")
    model = Model.objects.get(name="ep1-blue-model")
    assert (model.root / "sklearn_regression_model.pkl").read_bytes() == b"\x80\x04weights"
    assert deployment.scoring_script == "score.py"
    assert deployment.environment.conda_file["dependencies"][2] == {"pip": ["numpy"]}
    assert deployment.environment.image.startswith("mcr.microsoft.com/azureml/openmpi4.1.0")


@pytest.fixture
def ep1_blue(studio: Studio) -> Studio:
    assert studio("online-endpoint", "create", "--name", "ep1", "-f", "endpoint.yml").code == 0
    created = studio("online-deployment", "create", "-e", "ep1", "-f", "blue-deployment.yml", "--no-wait")
    assert created.code == 0, created.stderr
    return studio


def test_traffic_update_and_show_query(ep1_blue: Studio) -> None:
    updated = ep1_blue("online-endpoint", "update", "--name", "ep1", "--traffic", "blue=100")
    assert updated.code == 0, updated.stderr
    assert updated.json()["traffic"] == {"blue": 100}
    shown = ep1_blue("online-endpoint", "show", "-n", "ep1", "--query", "traffic")
    assert shown.code == 0
    assert shown.json() == {"blue": 100}


def test_show_tsv_query_prints_the_bare_scoring_uri(ep1_blue: Studio, settings: Any) -> None:
    shown = ep1_blue("online-endpoint", "show", "-n", "ep1", "-o", "tsv", "--query", "scoring_uri")
    assert shown.code == 0
    assert shown.stdout == f"{settings.STUDIO_GATEWAY_URL.rstrip('/')}/endpoints/ep1/score\n"


def test_list_endpoints_and_deployments(ep1_blue: Studio) -> None:
    assert ep1_blue("online-endpoint", "create", "--name", "ep2").code == 0
    endpoints = ep1_blue("online-endpoint", "list", "--query", "[].name")
    assert endpoints.json() == ["ep1", "ep2"]
    table = ep1_blue("online-endpoint", "list", "-o", "table")
    assert table.stdout.splitlines()[0].split()[:3] == ["Name", "AuthMode", "ProvisioningState"]
    assert [line.split()[0] for line in table.stdout.splitlines()[2:]] == ["ep1", "ep2"]
    deployments = ep1_blue("online-deployment", "list", "--endpoint-name", "ep1")
    assert [row["name"] for row in deployments.json()] == ["blue"]


def test_get_credentials_tsv_primary_key_and_regenerate_secondary(ep1_blue: Studio) -> None:
    endpoint = Endpoint.objects.get(name="ep1")
    primary = ep1_blue("online-endpoint", "get-credentials", "-n", "ep1", "-o", "tsv", "--query", "primaryKey")
    assert primary.stdout == endpoint.primary_key + "\n"
    regenerated = ep1_blue("online-endpoint", "regenerate-keys", "-n", "ep1", "--key-type", "secondary")
    assert regenerated.code == 0, regenerated.stderr
    keys = ep1_blue("online-endpoint", "get-credentials", "-n", "ep1").json()
    assert keys["primaryKey"] == endpoint.primary_key
    assert keys["secondaryKey"] != endpoint.secondary_key
    assert keys["secondaryKey"] == Endpoint.objects.get(name="ep1").secondary_key


def test_deployment_update_set_instance_count_scales(ep1_blue: Studio) -> None:
    result = ep1_blue(
        "online-deployment", "update", "--name", "blue", "--endpoint-name", "ep1", "--set", "instance_count=2",
        "--no-wait",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["instance_count"] == 2
    assert result.json()["provisioning_state"] == "Scaling"
    assert Deployment.objects.get(name="blue").instance_count == 2


def test_deployment_update_set_nested_key_keeps_the_others(ep1_blue: Studio) -> None:
    result = ep1_blue(
        "online-deployment", "update", "-n", "blue", "-e", "ep1", "--set", "request_settings.request_timeout_ms=9000",
        "--no-wait",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["request_settings"] == {
        "request_timeout_ms": 9000,
        "max_concurrent_requests_per_instance": 1,
        "max_queue_wait_ms": 500,
    }


def test_delete_with_yes_removes_the_endpoint(studio: Studio) -> None:
    assert studio("online-endpoint", "create", "--name", "ep1").code == 0
    result = studio("online-endpoint", "delete", "--name", "ep1", "--yes")
    assert result.code == 0, result.stderr
    assert "online endpoint ep1: deleted" in result.stderr
    assert not Endpoint.objects.filter(name="ep1").exists()


def test_delete_without_yes_and_no_terminal_refuses(studio: Studio) -> None:
    assert studio("online-endpoint", "create", "--name", "ep1").code == 0
    result = studio("online-endpoint", "delete", "--name", "ep1")
    assert_error(result, "not deleting online endpoint 'ep1' and all its deployments without confirmation: pass --yes")
    assert Endpoint.objects.filter(name="ep1").exists()


def test_deployment_delete_after_moving_its_traffic(ep1_blue: Studio) -> None:
    assert ep1_blue("online-endpoint", "update", "-n", "ep1", "--traffic", "blue=100").code == 0
    refused = ep1_blue("online-deployment", "delete", "-n", "blue", "-e", "ep1", "--yes")
    assert_error(refused, "deployment 'blue' takes 100 % of the live traffic of online endpoint 'ep1'")
    assert ep1_blue("online-endpoint", "update", "-n", "ep1", "--traffic", "blue=0").code == 0
    deleted = ep1_blue("online-deployment", "delete", "-n", "blue", "-e", "ep1", "--yes", "--no-wait")
    assert deleted.code == 0, deleted.stderr
    assert Deployment.objects.get(name="blue").state == "Deleting"


def test_mirror_traffic_set_and_reset_with_zero(ep1_blue: Studio) -> None:
    green = ep1_blue(
        "online-deployment", "create", "-n", "green", "-e", "ep1", "-f", "blue-deployment.yml", "--no-wait"
    )
    assert green.code == 0, green.stderr
    both = ep1_blue("online-endpoint", "update", "-n", "ep1", "--traffic", "blue=100", "--mirror-traffic", "green=10")
    assert both.json()["mirror_traffic"] == {"green": 10}
    reset = ep1_blue("online-endpoint", "update", "-n", "ep1", "--mirror-traffic", "green=0")
    assert reset.json()["mirror_traffic"] == {}
    assert reset.json()["traffic"] == {"blue": 100, "green": 0}


def test_model_and_environment_create_list_show(studio: Studio) -> None:
    model = studio("model", "create", "--name", "regressor", "--path", "model/sklearn_regression_model.pkl")
    assert model.code == 0, model.stderr
    assert model.json()["version"] == "1"
    again = studio("model", "create", "--name", "regressor", "--path", "model")
    assert again.json()["version"] == "2"
    assert studio("model", "show", "-n", "regressor", "--query", "version").json() == "2"
    assert studio("model", "list", "-n", "regressor", "-o", "tsv", "--query", "[].version").stdout.split() == ["2", "1"]
    env = studio(
        "environment", "create", "--name", "sk", "--image", "python:3.11", "--conda-file", "environment/conda.yaml"
    )
    assert env.code == 0, env.stderr
    assert Environment.objects.get(name="sk").conda_file["name"] == "model-env"
    shown = studio("environment", "show", "-n", "sk", "-v", "1", "-o", "yaml")
    assert "image: python:3.11" in shown.stdout

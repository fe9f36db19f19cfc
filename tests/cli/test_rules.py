"""Every rule of issue 2 (parts 3 and 4) sent through the CLI: the server's message, prefixed with the
YAML file when one was given, on one `ERROR:` line, and exit code 1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apps.endpoints.models import Endpoint
from tests import factories
from tests.cli.conftest import Result, assert_error

pytestmark = pytest.mark.django_db(transaction=True)

Studio = Callable[..., Result]


@pytest.mark.parametrize(
    ("yaml_text", "flags", "message"),
    [
        ("name: ep\n", (), "endpoint.yml: name: must be 3 to 32 characters long, got 'ep' (2)"),
        ("name: ep1\n", ("--name", "e" * 33), "endpoint.yml: name: must be 3 to 32 characters long"),
        ("name: 1ep\n", (), "endpoint.yml: name: must start with a letter and contain only letters, digits"),
        ("name: ep1\n", ("-n", "my--ep"), "endpoint.yml: name: must start with a letter"),
        ("name: my_ep\n", (), "endpoint.yml: name: must start with a letter"),
        ("name: ep1\nauth_mod: key\n", (), "endpoint.yml: auth_mod: unknown key; expected one of: $schema, auth_mode"),
        ("name: ep1\nauth_mode: [key]\n", (), "endpoint.yml: auth_mode: expected"),
        ("auth_mode: key\n", (), "endpoint.yml: name: required key is missing"),
        ("name: ep1\ntraffic:\n  blue: 100\n", (), "endpoint.yml: traffic: cannot be set when the endpoint is created"),
        ("name: ep1\nauth_mode: aad_token\n", (), "endpoint.yml: auth_mode: aad_token needs Microsoft Entra ID"),
    ],
)
def test_endpoint_yaml_rules(
    studio: Studio, azure_files: Path, yaml_text: str, flags: tuple[str, ...], message: str
) -> None:
    (azure_files / "endpoint.yml").write_text(yaml_text)
    result = studio("online-endpoint", "create", "-f", "endpoint.yml", *flags)
    assert_error(result, message)
    assert not Endpoint.objects.exists()


def test_endpoint_name_taken_is_refused(studio: Studio) -> None:
    factories.endpoint("ep1")
    result = studio("online-endpoint", "create", "-n", "ep1", "-f", "endpoint.yml")
    assert_error(result, "endpoint.yml: online endpoint 'ep1' already exists; use update to change it")


@pytest.fixture
def three_deployments(studio: Studio) -> Studio:
    endpoint = factories.endpoint("ep1")
    for name in ("blue", "green", "shadow"):
        factories.deployment(endpoint, name)
    return studio


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--traffic", "blue=90"), "traffic: must sum to 0 or 100, got 90 (blue=90)"),
        (("--traffic", "blue=50 red=50"), "traffic: names deployment 'red', which does not exist in online endpoint"),
        (("--traffic", "blue=lots"), "traffic.blue: expected"),
        (("--traffic", "blue"), '--traffic: expected deployment=percent pairs such as "blue=90 green=10", got'),
        (("--mirror-traffic", "green=10 shadow=10"), "mirror_traffic: can go to one deployment only, got 2"),
        (("--mirror-traffic", "green=60"), "mirror_traffic: can be at most 50 percent, got green=60"),
        (("--mirror-traffic", "red=10"), "mirror_traffic: names deployment 'red', which does not exist"),
        (
            ("--traffic", "blue=100", "--mirror-traffic", "blue=10"),
            "mirror_traffic: deployment 'blue' takes 100 % of live traffic",
        ),
    ],
)
def test_traffic_and_mirror_rules(three_deployments: Studio, flags: tuple[str, ...], message: str) -> None:
    before = Endpoint.objects.get(name="ep1").traffic
    result = three_deployments("online-endpoint", "update", "-n", "ep1", *flags)
    assert_error(result, message)
    assert Endpoint.objects.get(name="ep1").traffic == before


def test_endpoint_update_with_nothing_to_change_says_what_to_give(three_deployments: Studio) -> None:
    result = three_deployments("online-endpoint", "update", "-n", "ep1")
    assert_error(result, "nothing to update: give --file, --traffic, --mirror-traffic or --set")


@pytest.fixture
def ep1(studio: Studio) -> Studio:
    factories.endpoint("ep1")
    return studio


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--set", "instance_count=0"), "instance_count: expected an integer from 1 to 50, got 0"),
        (("--set", "instance_count=two"), "instance_count: expected an integer from 1 to 50, got 'two'"),
        (("--set", "instance_type=Standard_Z99"), "instance_type: unknown size 'Standard_Z99'; known sizes: "),
        (("--set", "model=azureml:missing:3"), "model: model missing:3 does not exist"),
        (("--set", "environment=azureml:nope@latest"), "environment: environment 'nope' does not exist"),
        (
            ("--set", "request_settings.request_timeout_ms=200000"),
            "request_settings.request_timeout_ms: expected an integer from 1 to 180000, got 200000",
        ),
        (("--set", "liveness_probe.timeout=0"), "liveness_probe.timeout: expected an integer of at least 1, got 0"),
        (("--set", "instance_typo=x"), "instance_typo: unknown key; expected one of:"),
        (("--name", "b"), "name: must be 3 to 32 characters long"),
        (
            ("--set", "code_configuration.scoring_script=main.py"),
            "code_configuration.scoring_script: 'main.py' is not a file in the code folder (it has: score.py)",
        ),
        (("--set", "data_collector.sampling_rate=1"), "data_collector: data collection is not supported yet"),
    ],
)
def test_deployment_yaml_rules(ep1: Studio, flags: tuple[str, ...], message: str) -> None:
    result = ep1("online-deployment", "create", "-e", "ep1", "-f", "blue-deployment.yml", "--no-wait", *flags)
    assert_error(result, f"blue-deployment.yml: {message}")
    assert not Endpoint.objects.get(name="ep1").deployments.exists()


def test_deployment_without_environment_is_refused(ep1: Studio, azure_files: Path) -> None:
    text = (azure_files / "blue-deployment.yml").read_text()
    start = text.index("environment:")
    end = text.index("instance_type:")
    (azure_files / "blue-deployment.yml").write_text(text[:start] + text[end:])
    result = ep1("online-deployment", "create", "-e", "ep1", "-f", "blue-deployment.yml", "--no-wait")
    assert_error(result, "blue-deployment.yml: environment: required key is missing")


def test_deployment_over_quota_is_refused_with_the_numbers(ep1: Studio, settings: Any) -> None:
    settings.STUDIO_CORE_QUOTA = 20
    result = ep1(
        "online-deployment", "create", "-e", "ep1", "-f", "blue-deployment.yml", "--no-wait",
        "--set", "instance_count=5",
    )  # fmt: skip
    assert_error(
        result,
        "blue-deployment.yml: OutOfQuota: instance_count 5 of Standard_DS3_v2 needs 24 cores "
        "(ceil(1.2 × 5) × 4 vCPUs) but only 20 of the 20-core quota are free",
    )


def test_deployment_missing_local_code_folder_names_file_key_and_path(ep1: Studio, azure_files: Path) -> None:
    (azure_files / "onlinescoring" / "score.py").unlink()
    (azure_files / "onlinescoring").rmdir()
    result = ep1("online-deployment", "create", "-e", "ep1", "-f", "blue-deployment.yml", "--no-wait")
    assert_error(
        result,
        f"blue-deployment.yml: code_configuration.code: ./onlinescoring/ does not exist "
        f"(looked for {(azure_files / 'onlinescoring').resolve()})",
    )


def test_deployment_missing_conda_file_names_file_key_and_path(ep1: Studio, azure_files: Path) -> None:
    (azure_files / "environment" / "conda.yaml").unlink()
    result = ep1("online-deployment", "create", "-e", "ep1", "-f", "blue-deployment.yml", "--no-wait")
    assert_error(result, "blue-deployment.yml: environment.conda_file: ./environment/conda.yaml does not exist")


def test_deployment_on_a_missing_endpoint_is_refused_before_uploading(studio: Studio) -> None:
    result = studio("online-deployment", "create", "-e", "nope1", "-f", "blue-deployment.yml", "--no-wait")
    assert_error(result, "online endpoint 'nope1' does not exist")


def test_deployment_without_endpoint_name_says_how_to_give_it(studio: Studio, azure_files: Path) -> None:
    text = (azure_files / "blue-deployment.yml").read_text().replace("endpoint_name: my-endpoint\n", "")
    (azure_files / "blue-deployment.yml").write_text(text)
    result = studio("online-deployment", "create", "-f", "blue-deployment.yml")
    assert_error(result, "blue-deployment.yml: no endpoint: give --endpoint-name (-e)")


def test_key_rules(studio: Studio) -> None:
    factories.endpoint("ep1")
    factories.endpoint("tok", auth_mode="aml_token")
    assert_error(
        studio("online-endpoint", "get-token", "-n", "ep1"),
        "online endpoint 'ep1' uses key auth; get-token is for aml_token endpoints",
    )
    assert_error(
        studio("online-endpoint", "regenerate-keys", "-n", "tok", "--key-type", "primary"),
        "online endpoint 'tok' uses aml_token auth, which has no keys",
    )
    assert_error(
        studio("online-endpoint", "regenerate-keys", "-n", "ep1", "--key-type", "secondary", "--key-value", "short"),
        "keyValue: expected 16 to 128 letters, digits, '-' or '_'",
    )
    assert_error(
        studio("online-endpoint", "regenerate-keys", "-n", "ep1", "--key-type", "tertiary"),
        "studio online-endpoint regenerate-keys: argument --key-type: invalid choice: 'tertiary'",
    )


def test_aml_token_endpoint_get_token_and_credentials(studio: Studio) -> None:
    from apps.endpoints.tokens import verify_token

    endpoint = factories.endpoint("tok", auth_mode="aml_token")
    token = studio("online-endpoint", "get-token", "-n", "tok").json()
    assert set(token) == {"accessToken", "expiryTimeUtc", "refreshAfterTimeUtc"}
    assert verify_token(token["accessToken"], endpoint="tok", secret=endpoint.token_secret)
    assert token["expiryTimeUtc"] > token["refreshAfterTimeUtc"]
    assert set(studio("online-endpoint", "get-credentials", "-n", "tok").json()) == set(token)


def test_model_rules(studio: Studio, azure_files: Path) -> None:
    (azure_files / "model.yml").write_text("name: regressor\npath: ./missing.pkl\n")
    assert_error(
        studio("model", "create", "-f", "model.yml"),
        f"model.yml: path: ./missing.pkl does not exist (looked for {(azure_files / 'missing.pkl').resolve()})",
    )
    (azure_files / "model.yml").write_text("name: regressor\npath: ./model\ntype: onnx_model\n")
    assert_error(studio("model", "create", "-f", "model.yml"), "model.yml: type: expected one of custom_model")
    (azure_files / "model.yml").write_text("name: regressor\npath: ./model\nversion: 3\n")
    assert studio("model", "create", "-f", "model.yml").code == 0
    assert_error(
        studio("model", "create", "-f", "model.yml"),
        "model.yml: model regressor:3 already exists; omit version to register the next one",
    )


def test_environment_rules(studio: Studio, azure_files: Path) -> None:
    (azure_files / "env.yml").write_text("name: docker-env\nbuild:\n  path: ./onlinescoring\n")
    assert_error(studio("environment", "create", "-f", "env.yml"), "env.yml: build: Docker build contexts are not")
    (azure_files / "env.yml").write_text("name: sk\nimage: python:3.11\nconda_file: environment/conda.yaml\n")
    assert studio("environment", "create", "-f", "env.yml", "--version", "1").code == 0
    assert_error(
        studio("environment", "create", "-f", "env.yml", "--version", "1", "--image", "python:3.12"),
        "env.yml: environment sk:1 already exists with a different image or packages",
    )

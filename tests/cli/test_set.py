"""`--set` as `az ml` applies it: to the YAML document before anything is read from it, on every create and
update of endpoints, deployments, models and environments, with nested keys and list indexes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from apps.endpoints.models import Deployment, Endpoint, Environment, Model
from cli.errors import CliError
from cli.files import apply_sets
from tests import factories
from tests.cli.conftest import Result

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

Studio = Callable[..., Result]

# As Azure's samples ship it: the endpoint's name is filled in by the script that runs `az ml`.
PLACEHOLDER_DEPLOYMENT = """\
name: blue
endpoint_name: <endpoint_name>
model:
  path: ./model/sklearn_regression_model.pkl
code_configuration:
  code: ./onlinescoring/
  scoring_script: score.py
environment:
  conda_file: ./environment/conda.yaml
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
instance_type: Standard_DS3_v2
instance_count: 1
"""


def test_set_endpoint_name_names_the_endpoint_before_it_is_looked_up(studio: Studio, azure_files: Path) -> None:
    factories.endpoint("ep-from-script")
    (azure_files / "deployment.yml").write_text(PLACEHOLDER_DEPLOYMENT)
    result = studio(
        "online-deployment", "create", "-f", "deployment.yml", "--set", "endpoint_name=ep-from-script", "--no-wait"
    )
    assert result.code == 0, result.stderr
    assert result.json()["endpoint_name"] == "ep-from-script"
    assert Deployment.objects.get(name="blue").endpoint.name == "ep-from-script"


def test_the_endpoint_flag_wins_over_set_as_in_az(studio: Studio, azure_files: Path) -> None:
    factories.endpoint("ep1")
    (azure_files / "deployment.yml").write_text(PLACEHOLDER_DEPLOYMENT)
    result = studio(
        "online-deployment", "create", "-f", "deployment.yml", "-e", "ep1", "--set", "endpoint_name=other", "--no-wait"
    )
    assert result.code == 0, result.stderr
    assert Deployment.objects.get(name="blue").endpoint.name == "ep1"


def test_set_model_environment_variables_and_tags_on_create(studio: Studio) -> None:
    factories.endpoint("ep1")
    registered = factories.model("m")
    result = studio(
        "online-deployment", "create", "-f", "blue-deployment.yml", "-e", "ep1", "--no-wait",
        "--set", f"model=azureml:m:{registered.version}",
        "--set", "environment_variables.A=1",
        "--set", "environment_variables.GREETING=hello world",
        "--set", "tags.x=y",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    shown = result.json()
    assert shown["model"] == f"azureml:m:{registered.version}"
    assert shown["tags"] == {"x": "y"}
    deployment = Deployment.objects.get(name="blue")
    assert deployment.model == registered
    assert deployment.environment_variables == {"A": "1", "GREETING": "hello world"}


def test_set_on_update_changes_only_what_it_names(studio: Studio) -> None:
    endpoint = factories.endpoint("ep1")
    factories.deployment(endpoint, "blue", environment_variables={"KEEP": "me"})
    result = studio(
        "online-deployment", "update", "-n", "blue", "-e", "ep1", "--no-wait",
        "--set", "environment_variables.A=2", "--set", "tags.team=ml",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    deployment = Deployment.objects.get(name="blue")
    assert deployment.environment_variables == {"KEEP": "me", "A": "2"}
    assert deployment.tags == {"team": "ml"}


def test_set_with_a_file_on_update_applies_before_the_endpoint_is_read(studio: Studio, azure_files: Path) -> None:
    endpoint = factories.endpoint("ep2")
    factories.deployment(endpoint, "blue")
    (azure_files / "deployment.yml").write_text(PLACEHOLDER_DEPLOYMENT)
    result = studio(
        "online-deployment", "update", "-f", "deployment.yml", "--set", "endpoint_name=ep2",
        "--set", "instance_count=2", "--no-wait",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert Deployment.objects.get(name="blue").instance_count == 2


def test_set_on_endpoint_create_and_update(studio: Studio) -> None:
    created = studio("online-endpoint", "create", "-f", "endpoint.yml", "--set", "name=ep-set", "--set", "tags.x=y")
    assert created.code == 0, created.stderr
    assert Endpoint.objects.get(name="ep-set").tags == {"x": "y"}
    updated = studio("online-endpoint", "update", "-n", "ep-set", "--set", "description=for the demo")
    assert updated.code == 0, updated.stderr
    assert Endpoint.objects.get(name="ep-set").description == "for the demo"


def test_set_on_model_and_environment_create(studio: Studio, azure_files: Path) -> None:
    (azure_files / "model.yml").write_text("name: placeholder\npath: ./model/sklearn_regression_model.pkl\n")
    model = studio("model", "create", "-f", "model.yml", "--set", "name=reg", "--set", "tags.stage=dev")
    assert model.code == 0, model.stderr
    assert Model.objects.get(name="reg").tags == {"stage": "dev"}
    (azure_files / "env.yml").write_text("name: env\nimage: python:3.11\nconda_file: ./environment/conda.yaml\n")
    env = studio(
        "environment", "create", "-f", "env.yml", "--set", "version=7", "--set", "conda_file=./environment/conda.yaml"
    )
    assert env.code == 0, env.stderr
    stored = Environment.objects.get(name="env", version="7")
    assert stored.conda_file is not None and stored.conda_file["name"] == "model-env"


def test_apply_sets_nested_paths_and_list_indexes() -> None:
    doc = {
        "name": "blue",
        "environment": {"conda_file": {"dependencies": ["python=3.9", "pip", {"pip": ["numpy", "joblib"]}]}},
    }
    touched = apply_sets(
        doc,
        [
            "environment.conda_file.dependencies[0]=python=3.11",
            "environment.conda_file.dependencies[2].pip[1]=joblib==1.4.2",
            "environment.conda_file.dependencies.1=pip=24",
            "environment.conda_file.dependencies[3]=scipy",
            "request_settings.request_timeout_ms=9000",
            "environment_variables.A=1",
        ],
    )
    assert touched == {"environment", "request_settings", "environment_variables"}
    assert doc["environment"]["conda_file"]["dependencies"] == [
        "python=3.11",
        "pip=24",
        {"pip": ["numpy", "joblib==1.4.2"]},
        "scipy",
    ]
    assert doc["request_settings"] == {"request_timeout_ms": 9000}
    assert doc["environment_variables"] == {"A": 1}


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("tags", "--set: expected key=value"),
        ("a..b=1", "--set a..b: empty name between dots"),
        ("deps[5]=x", "--set deps[5]: deps has 1 item(s); index 5 is out of range"),
        ("deps.x=1", "--set deps.x: deps is a list; expected an index, got 'x'"),
        ("name.first=x", "--set name.first: name is 'blue', not a mapping or a list"),
        ("[0]=x", "--set [0]: must start with a key name"),
    ],
)
def test_apply_sets_refuses_what_it_cannot_apply(assignment: str, message: str) -> None:
    with pytest.raises(CliError) as raised:
        apply_sets({"name": "blue", "deps": ["a"]}, [assignment])
    assert raised.value.message.startswith(message), raised.value.message

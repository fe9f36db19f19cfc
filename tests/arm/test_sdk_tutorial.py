"""Azure's tutorial, with Azure's own SDK (azure-ai-ml, unchanged), against a real studio over HTTPS.

Each SDK call's result is checked against what the studio's CLI shows about the same thing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.arm.conftest import LiveStudio

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]

SCORE_PY = """\
import glob
import json
import os

import numpy


def init():
    global weights
    path = glob.glob(os.path.join(os.environ["AZUREML_MODEL_DIR"], "**", "model.json"), recursive=True)[0]
    weights = numpy.array(json.load(open(path))["weights"])
    print("sdk tutorial: model loaded with", len(weights), "weights", flush=True)


def run(raw_data):
    data = numpy.array(json.loads(raw_data)["data"])
    return (data @ weights).tolist()
"""


@pytest.fixture
def tutorial_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model file, a code folder with score.py, the samples' conda file and a request file; the working folder."""
    (tmp_path / "onlinescoring").mkdir()
    (tmp_path / "onlinescoring" / "score.py").write_text(SCORE_PY)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_text(json.dumps({"weights": [1.0, 2.0, 3.0]}))
    shutil.copy(REPO / "samples" / "environment" / "conda.yaml", tmp_path / "conda.yaml")
    (tmp_path / "request.json").write_text(json.dumps({"data": [[1, 1, 1], [1, 0, 2]]}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_sdk_tutorial_runs_unchanged_and_agrees_with_the_cli(
    live_studio: LiveStudio, ml_client: Any, tutorial_folder: Path
) -> None:
    from azure.ai.ml.entities import (
        CodeConfiguration,
        Environment,
        ManagedOnlineDeployment,
        ManagedOnlineEndpoint,
        Model,
    )

    cli = live_studio.cli

    # Create an endpoint.
    endpoint = ManagedOnlineEndpoint(name="sdk-tutorial", description="made by azure-ai-ml", auth_mode="key")
    created = ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    shown = cli("online-endpoint", "show", "-n", "sdk-tutorial")
    assert (created.name, created.auth_mode, created.description) == (shown["name"], "key", "made by azure-ai-ml")
    assert created.provisioning_state == shown["provisioning_state"]
    assert created.scoring_uri.startswith("https://")  # the gateway's HTTPS port, same path as the CLI's URI
    assert created.scoring_uri.split("/", 3)[3] == shown["scoring_uri"].split("/", 3)[3]

    # Create a deployment from a local model file, a code folder with score.py and a conda file; wait for it.
    model = Model(path="model/model.json")
    env = Environment(conda_file="conda.yaml", image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest")
    blue = ManagedOnlineDeployment(
        name="blue",
        endpoint_name="sdk-tutorial",
        model=model,
        environment=env,
        code_configuration=CodeConfiguration(code="onlinescoring", scoring_script="score.py"),
        instance_type="Standard_DS3_v2",
        instance_count=1,
    )
    deployed = ml_client.online_deployments.begin_create_or_update(blue).result()
    shown = cli("online-deployment", "show", "-e", "sdk-tutorial", "-n", "blue")
    assert deployed.provisioning_state == shown["provisioning_state"] == "Succeeded"
    assert (deployed.instance_count, deployed.instance_type) == (shown["instance_count"], shown["instance_type"])
    assert shown["ready_instances"] == 1
    model_name, model_version = shown["model"].removeprefix("azureml:").split(":")
    assert deployed.model.endswith(f"/models/{model_name}/versions/{model_version}")
    assert deployed.code_configuration.scoring_script == "score.py"
    stored = cli("model", "show", "-n", model_name, "--version", model_version)
    assert stored["path"] == "model.json"
    env_name, env_version = shown["environment"].removeprefix("azureml:").split(":")
    environment = cli("environment", "show", "-n", env_name, "--version", env_version)
    assert deployed.environment.endswith(f"/environments/{env_name}/versions/{env_version}")
    assert environment["conda_file"]["dependencies"][1] == "scikit-learn=1.5.2"  # samples/environment/conda.yaml

    endpoint.traffic = {"blue": 100}
    ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    assert cli("online-endpoint", "show", "-n", "sdk-tutorial")["traffic"] == {"blue": 100}

    # Invoke it with a request file.
    answer = ml_client.online_endpoints.invoke(endpoint_name="sdk-tutorial", request_file="request.json")
    assert json.loads(answer) == [6.0, 7.0]
    by_cli = cli("online-endpoint", "invoke", "-n", "sdk-tutorial", "--request-file", "request.json")
    assert by_cli == json.loads(answer)

    # Read its logs.
    logs = ml_client.online_deployments.get_logs(name="blue", endpoint_name="sdk-tutorial", lines=50)
    assert "sdk tutorial: model loaded with 3 weights" in logs
    assert "sdk tutorial: model loaded with 3 weights" in cli(
        "online-deployment", "get-logs", "-e", "sdk-tutorial", "-n", "blue", "--lines", "50"
    )
    initializer = ml_client.online_deployments.get_logs(
        name="blue", endpoint_name="sdk-tutorial", lines=50, container_type="storage-initializer"
    )
    assert "model.json" in initializer

    # Read its keys.
    keys = ml_client.online_endpoints.get_keys(name="sdk-tutorial")
    credentials = cli("online-endpoint", "get-credentials", "-n", "sdk-tutorial")
    assert (keys.primary_key, keys.secondary_key) == (credentials["primaryKey"], credentials["secondaryKey"])

    # Update its instance count.
    blue.instance_count = 2
    scaled = ml_client.online_deployments.begin_create_or_update(blue).result()
    shown = cli("online-deployment", "show", "-e", "sdk-tutorial", "-n", "blue")
    assert scaled.instance_count == shown["instance_count"] == 2
    assert scaled.provisioning_state == shown["provisioning_state"] == "Succeeded"
    assert shown["ready_instances"] == 2
    assert shown["model"] == f"azureml:{model_name}:{model_version}"  # the same model: nothing re-registered
    assert [d.name for d in ml_client.online_deployments.list(endpoint_name="sdk-tutorial")] == ["blue"]

    # Delete the endpoint.
    ml_client.online_endpoints.begin_delete(name="sdk-tutorial").result()
    assert "sdk-tutorial" not in [row["name"] for row in cli("online-endpoint", "list")]
    assert "does not exist" in cli("online-endpoint", "show", "-n", "sdk-tutorial", ok=False)


def test_a_model_over_64_mib_is_uploaded_in_blocks_and_arrives_byte_identical(
    live_studio: LiveStudio, ml_client: Any, tmp_path: Path
) -> None:
    from azure.ai.ml.entities import Model

    big = tmp_path / "weights.bin"
    digest = hashlib.sha256()
    with big.open("wb") as out:
        for _ in range(65):  # 65 MiB: over the SDK's 64 MiB single-put limit, so it uploads blocks
            chunk = os.urandom(1024 * 1024)
            digest.update(chunk)
            out.write(chunk)
    registered = ml_client.models.create_or_update(Model(path=str(big), name="big-model", version="1"))
    assert (registered.name, registered.version) == ("big-model", "1")
    shown = live_studio.cli("model", "show", "-n", "big-model", "--version", "1")
    assert shown["path"] == "weights.bin"
    stored = [p for p in (live_studio.home / "media").rglob("weights.bin") if "models" in p.parts]
    assert len(stored) == 1, stored
    with stored[0].open("rb") as handle:
        assert hashlib.file_digest(handle, "sha256").hexdigest() == digest.hexdigest()
    # The blocks were joined and taken by the model: nothing is left behind in the blob store.
    assert not [p for p in (live_studio.home / "media" / "blobs").rglob("*") if p.is_file()]

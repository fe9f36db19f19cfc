"""`studio online-deployment get-logs` for both containers of a deployment the local backend runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from apps.endpoints import reconcile
from apps.endpoints.models import Deployment
from tests.cli.conftest import ENDPOINT_YML, assert_error, azure_files, cli_env, run  # noqa: F401 (fixtures)
from tests.cli.test_up import SCORING_DEPLOYMENT_YML


@pytest.mark.django_db(transaction=True)
def test_get_logs_prints_the_inference_server_and_the_storage_initializer_logs(
    local: Path,
    cli_env: dict[str, str],  # noqa: F811
    azure_files: Path,  # noqa: F811
) -> None:
    (azure_files / "endpoint.yml").write_text(ENDPOINT_YML.replace("my-endpoint", "ep1"))
    (azure_files / "blue-deployment.yml").write_text(SCORING_DEPLOYMENT_YML)

    def cli(*args: str) -> str:
        result = run(args, cli_env, cwd=azure_files)
        assert result.code == 0, result.stderr
        return result.stdout

    cli("online-endpoint", "create", "-f", "endpoint.yml")
    cli("online-deployment", "create", "-f", "blue-deployment.yml", "--no-wait")
    deployment = Deployment.objects.get(name="blue")
    deadline = time.monotonic() + 120
    while reconcile.reconcile(deployment.pk) != "Succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.2)

    server = cli("online-deployment", "get-logs", "-n", "blue", "-e", "ep1", "--lines", "100")
    assert "ready for serving traffic" in server
    initializer = cli("online-deployment", "get-logs", "-n", "blue", "-e", "ep1", "--container", "storage-initializer")
    assert "storage-initializer: model azureml:" in initializer
    assert "sklearn_regression_model.pkl" in initializer
    short = cli("online-deployment", "get-logs", "-n", "blue", "-e", "ep1", "--lines", "2")
    assert len(short.strip().splitlines()) == 2
    unknown = run(("online-deployment", "get-logs", "-n", "blue", "-e", "ep1", "--instance", "nope"), cli_env)
    assert_error(unknown, "instance 'nope' is not an instance of deployment 'blue'")

"""The CLI runs as a real subprocess (`.venv/bin/studio`) against a real studio: pytest-django's live
server, signed in with an API token passed through STUDIO_URL / STUDIO_TOKEN.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import factories

STUDIO = str(Path(sys.executable).with_name("studio"))

ENDPOINT_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: my-endpoint
auth_mode: key
"""

DEPLOYMENT_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my-endpoint
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

CONDA_YML = """\
name: model-env
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
      - numpy
"""


@dataclass
class Result:
    """What a user sees from one CLI run."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        import json

        return json.loads(self.stdout)


@pytest.fixture
def azure_files(tmp_path: Path) -> Path:
    """A folder laid out like Azure's examples: endpoint and deployment YAML, model, scoring code, conda file."""
    root = tmp_path / "azure"
    factories.write_tree(
        root,
        {
            "endpoint.yml": ENDPOINT_YML,
            "blue-deployment.yml": DEPLOYMENT_YML,
            "onlinescoring/score.py": factories.SCORE_PY,
            "environment/conda.yaml": CONDA_YML,
            "sample-request.json": '{"data": [[1, 2, 3]]}\n',
        },
    )
    (root / "model").mkdir()
    (root / "model" / "sklearn_regression_model.pkl").write_bytes(b"\x80\x04weights")
    return root


@pytest.fixture
def cli_env(live_server: Any, tmp_path: Path) -> dict[str, str]:
    """Environment of a signed-in CLI user talking to the live studio (no config file under its STUDIO_HOME)."""
    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user=factories.user())
    env = {key: value for key, value in os.environ.items() if not key.startswith("STUDIO_")}
    env.update(
        STUDIO_URL=live_server.url,
        STUDIO_TOKEN=token.key,
        STUDIO_HOME=str(tmp_path / "cli-home"),
        STUDIO_CLI_POLL_S="0.1",
    )
    return env


def run(args: tuple[str, ...], env: dict[str, str], cwd: Path | None = None, timeout: float = 60) -> Result:
    done = subprocess.run(
        [STUDIO, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def studio(cli_env: dict[str, str], azure_files: Path) -> Callable[..., Result]:
    """Run `studio <args>` from the folder holding the Azure files."""

    def call(*args: str, env: dict[str, str] | None = None) -> Result:
        return run(args, {**cli_env, **(env or {})}, cwd=azure_files)

    return call


def assert_error(result: Result, message: str) -> None:
    """The CLI failed the way a user should see it: exit 1 and one `ERROR:` line, no traceback."""
    assert result.code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(f"ERROR: {message}"), f"\n{lines[0]}\n!=\nERROR: {message}"

"""`--local` as Azure's local endpoints behave: no key, one deployment that takes every request without
`--all-traffic`, `create/update/show/list/invoke/get-logs/delete --local`; other operations say they are not
supported locally. The whole-stack test runs a real `studio up` and scores with curl through the gateway.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.endpoints.models import Endpoint
from tests import factories
from tests.cli.conftest import ENDPOINT_YML, Result, assert_error, azure_files, run  # noqa: F401 (fixture)
from tests.cli.test_up import SCORING_DEPLOYMENT_YML, start_up, stop_with_ctrl_c, up_env  # noqa: F401 (fixtures)
from tests.endpoints.conftest import kill_instances

Studio = Callable[..., Result]


@pytest.fixture
def instances_dir(up_env: dict[str, str]) -> Iterator[Path]:  # noqa: F811
    folder = Path(up_env["STUDIO_HOME"]) / "instances"
    yield folder
    kill_instances(folder)


@pytest.mark.e2e
def test_a_local_endpoint_end_to_end_scored_with_curl_and_no_key(
    start_up: Any,  # noqa: F811
    up_env: dict[str, str],  # noqa: F811
    azure_files: Path,  # noqa: F811
    instances_dir: Path,
) -> None:
    (azure_files / "endpoint.yml").write_text(ENDPOINT_YML.replace("my-endpoint", "ep1"))
    (azure_files / "blue-deployment.yml").write_text(SCORING_DEPLOYMENT_YML)
    (azure_files / "green-deployment.yml").write_text(SCORING_DEPLOYMENT_YML.replace("name: blue", "name: green"))
    up = start_up("local")

    def cli(*args: str, code: int = 0) -> Result:
        result = run(args, up_env, cwd=azure_files, timeout=300)
        assert result.code == code, f"studio {' '.join(args)}:\n{result.stderr}\n--- studio up:\n{up.output()[-3000:]}"
        return result

    created = cli("online-endpoint", "create", "--local", "-n", "ep1", "-f", "endpoint.yml").json()
    assert created["local"] is True and created["location"] == "local"
    # No --all-traffic: the one deployment of a local endpoint takes every request.
    deployed = cli(
        "online-deployment", "create", "--local", "-n", "blue", "--endpoint", "ep1", "-f", "blue-deployment.yml"
    )
    assert deployed.json()["provisioning_state"] == "Succeeded"

    answer = cli("online-endpoint", "invoke", "--local", "--name", "ep1", "--request-file", "sample-request.json")
    assert json.loads(answer.stdout)["echo"] == {"data": [[1, 2, 3]]}
    uri = cli("online-endpoint", "show", "--local", "-n", "ep1", "-o", "tsv", "--query", "scoring_uri").stdout.strip()
    curl = subprocess.run(
        ["curl", "-sS", "-H", "Content-Type: application/json", "-d", "@sample-request.json", uri],
        cwd=azure_files,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert curl.returncode == 0, curl.stderr
    assert json.loads(curl.stdout)["echo"] == {"data": [[1, 2, 3]]}

    shown = cli("online-endpoint", "show", "--local", "-n", "ep1").json()
    assert shown["traffic"] == {} and shown["provisioning_state"] == "Succeeded"
    listed = cli("online-endpoint", "list", "--local", "--query", "[].name").json()
    assert listed == ["ep1"]
    assert cli("online-deployment", "show", "--local", "-n", "blue", "-e", "ep1").json()["name"] == "blue"
    assert cli("online-deployment", "get-logs", "--local", "-n", "blue", "-e", "ep1", "--lines", "20").stdout.strip()

    second = cli(
        "online-deployment", "create", "--local", "-n", "green", "-e", "ep1", "-f", "green-deployment.yml", code=1
    )
    assert "is local and already has deployment 'blue'; a local endpoint has one deployment" in second.stderr
    keys = cli("online-endpoint", "get-credentials", "-n", "ep1", code=1)
    assert "online endpoint 'ep1' is local: it has no keys" in keys.stderr
    traffic = cli("online-endpoint", "update", "--local", "-n", "ep1", "--traffic", "blue=100", code=1)
    assert "--traffic is not supported for local endpoints" in traffic.stderr

    updated = cli(
        "online-deployment", "update", "--local", "-n", "blue", "-e", "ep1", "--set", "environment_variables.VERSION=2"
    )
    assert updated.json()["provisioning_state"] == "Succeeded"
    again = cli("online-endpoint", "invoke", "--local", "--name", "ep1", "--request-file", "sample-request.json")
    assert json.loads(again.stdout)["echo"] == {"data": [[1, 2, 3]]}
    assert updated.json()["environment_variables"] == {"VERSION": "2"}

    cli("online-endpoint", "delete", "--local", "-n", "ep1", "--yes")
    assert stop_with_ctrl_c(up) == 0


pytestmark_db = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytestmark_db
def test_local_verbs_refuse_an_endpoint_that_is_not_local(studio: Studio) -> None:
    factories.endpoint("ep1")
    assert_error(
        studio("online-endpoint", "show", "--local", "-n", "ep1"),
        "online endpoint 'ep1' is not a local endpoint (it was created without --local); drop --local",
    )
    assert_error(
        studio("online-deployment", "create", "--local", "-e", "ep1", "-f", "blue-deployment.yml"),
        "online endpoint 'ep1' is not a local endpoint",
    )


@pytestmark_db
def test_operations_a_local_endpoint_does_not_have_say_so(studio: Studio) -> None:
    created = studio("online-endpoint", "create", "--local", "-n", "ep1")
    assert created.code == 0, created.stderr
    assert Endpoint.objects.get(name="ep1").local
    assert_error(
        studio("online-endpoint", "update", "--local", "-n", "ep1", "--mirror-traffic", "blue=10"),
        "--mirror-traffic is not supported for local endpoints",
    )
    assert_error(
        studio("online-endpoint", "update", "-n", "ep1", "--traffic", "blue=100"),
        "traffic: is not supported for the local endpoint 'ep1'",
    )
    assert_error(
        studio("online-endpoint", "regenerate-keys", "-n", "ep1", "--key-type", "primary"),
        "online endpoint 'ep1' is local: it has no keys",
    )
    assert_error(
        studio("online-endpoint", "get-token", "-n", "ep1"), "online endpoint 'ep1' is local: it takes no tokens"
    )
    assert_error(
        studio("online-deployment", "render", "--local", "-e", "ep1", "-f", "blue-deployment.yml"),
        "render is not supported for local endpoints",
    )
    assert_error(studio("online-endpoint", "update", "-n", "ep1", "--set", "local=false"), "local: cannot be changed")
    described = studio("online-endpoint", "update", "--local", "-n", "ep1", "--set", "description=on my laptop")
    assert described.code == 0, described.stderr
    assert described.json()["description"] == "on my laptop"

"""Whole stack: instances outlive a `studio up` restart and are re-adopted by the new worker, never duplicated."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.conftest import ENDPOINT_YML, azure_files, run  # noqa: F401 (azure_files is a fixture)
from tests.cli.test_up import SCORING_DEPLOYMENT_YML, start_up, stop_with_ctrl_c, up_env  # noqa: F401 (fixtures)
from tests.endpoints.conftest import kill_instances, runtime_processes


@pytest.fixture
def instances_dir(up_env: dict[str, str]) -> Iterator[Path]:  # noqa: F811
    """The instance folders of the `studio up` under test; whatever still runs there is killed at the end."""
    folder = Path(up_env["STUDIO_HOME"]) / "instances"
    yield folder
    kill_instances(folder)


def pids(instances: Path) -> list[int]:
    return sorted(process.pid for process in runtime_processes(instances))


@pytest.mark.e2e
def test_instances_survive_a_studio_up_restart_and_are_re_adopted_without_duplicates(
    start_up: Any,  # noqa: F811
    up_env: dict[str, str],  # noqa: F811
    azure_files: Path,  # noqa: F811
    instances_dir: Path,
) -> None:
    (azure_files / "endpoint.yml").write_text(ENDPOINT_YML.replace("my-endpoint", "ep1"))
    (azure_files / "blue-deployment.yml").write_text(
        SCORING_DEPLOYMENT_YML.replace("instance_count: 1", "instance_count: 2")
    )
    up = start_up("first")

    def cli(*args: str) -> Any:
        result = run(args, up_env, cwd=azure_files, timeout=300)
        assert result.code == 0, f"studio {' '.join(args)}:\n{result.stderr}\n--- studio up:\n{up.output()[-4000:]}"
        return result

    cli("online-endpoint", "create", "-f", "endpoint.yml")
    created = cli("online-deployment", "create", "-f", "blue-deployment.yml", "--all-traffic")
    assert created.json()["provisioning_state"] == "Succeeded"
    before = pids(instances_dir)
    assert len(before) == 2
    assert stop_with_ctrl_c(up) == 0
    assert pids(instances_dir) == before, "instances run in their own session and outlive the studio"

    up = start_up("second")
    answer = cli("online-endpoint", "invoke", "-n", "ep1", "--request-file", "sample-request.json")
    assert json.loads(answer.stdout)["echo"] == {"data": [[1, 2, 3]]}
    # Several periodic passes of the new worker later: the same two processes, no third one.
    time.sleep(6)
    assert pids(instances_dir) == before
    shown = cli("online-deployment", "show", "-n", "blue", "-e", "ep1").json()
    assert shown["provisioning_state"] == "Succeeded"
    assert [instance["state"] for instance in shown["instances"]] == ["Ready", "Ready"]
    assert [instance["restarts"] for instance in shown["instances"]] == [0, 0]
    cli("online-endpoint", "delete", "-n", "ep1", "--yes")
    assert pids(instances_dir) == []
    assert stop_with_ctrl_c(up) == 0


@pytest.mark.e2e
def test_scaling_1_3_1_and_a_rolling_update_through_the_gateway_fail_no_request(
    start_up: Any,  # noqa: F811
    up_env: dict[str, str],  # noqa: F811
    azure_files: Path,  # noqa: F811
    instances_dir: Path,
) -> None:
    (azure_files / "endpoint.yml").write_text(ENDPOINT_YML.replace("my-endpoint", "ep1"))
    (azure_files / "blue-deployment.yml").write_text(SCORING_DEPLOYMENT_YML)
    up = start_up("scale")

    def cli(*args: str) -> Any:
        result = run(args, up_env, cwd=azure_files, timeout=300)
        assert result.code == 0, f"studio {' '.join(args)}:\n{result.stderr}\n--- studio up:\n{up.output()[-4000:]}"
        return result

    cli("online-endpoint", "create", "-f", "endpoint.yml")
    cli("online-deployment", "create", "-f", "blue-deployment.yml", "--all-traffic")
    scoring_uri = cli("online-endpoint", "show", "-n", "ep1").json()["scoring_uri"]
    key = cli("online-endpoint", "get-credentials", "-n", "ep1").json()["primaryKey"]
    failures: list[str] = []
    served: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {key}"}) as client:
            while not stop.is_set():
                try:
                    answer = client.post(scoring_uri, json={"data": [[1, 2, 3]]})
                    if answer.status_code == 200:
                        served.append(answer.headers.get("azureml-model-deployment", ""))
                    else:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                time.sleep(0.01)

    client = threading.Thread(target=load, daemon=True)
    client.start()
    try:
        cli("online-deployment", "update", "-n", "blue", "-e", "ep1", "--set", "instance_count=3")
        assert len(pids(instances_dir)) == 3
        time.sleep(1)
        cli("online-deployment", "update", "-n", "blue", "-e", "ep1", "--set", "instance_count=1")
        time.sleep(1)
        cli("online-deployment", "update", "-n", "blue", "-e", "ep1", "--set", "environment_variables.VERSION=2")
        time.sleep(2)
    finally:
        stop.set()
        client.join(timeout=15)
    assert failures == []
    assert len(served) > 50
    assert len(pids(instances_dir)) == 1
    cli("online-endpoint", "delete", "-n", "ep1", "--yes")
    assert stop_with_ctrl_c(up) == 0

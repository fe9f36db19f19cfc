"""`studio online-endpoint rollout ...` against a live studio: flags, --set and a file make one document."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from apps.endpoints import services
from apps.endpoints.models import Deployment, ProvisioningState
from tests import factories
from tests.cli.conftest import Result, assert_error

pytestmark = pytest.mark.django_db(transaction=True)


def test_rollout_start_show_pause_abort_from_the_cli(studio: Callable[..., Result], azure_files: Path) -> None:
    ep = factories.endpoint("ep1")
    factories.deployment(ep, "blue")
    factories.deployment(ep, "green")
    Deployment.objects.filter(endpoint=ep).update(state=ProvisioningState.SUCCEEDED)
    services.traffic_set(endpoint=ep, traffic={"blue": 100, "green": 0})
    (azure_files / "rollout.yml").write_text("deployment: green\nsteps: [10, 50, 100]\nmin_requests: 10\n")

    started = studio(
        "online-endpoint", "rollout", "start", "--name", "ep1", "-f", "rollout.yml",
        "--set", "step_duration=2m", "--steps", "25,100", "--max-error-rate", "2.5",
    )  # fmt: skip
    assert started.code == 0, started.stderr
    body = started.json()
    assert (body["state"], body["position"], body["traffic"]) == ("Running", "step 1 (25 %)", {"blue": 75, "green": 25})
    assert body["spec"]["step_duration"] == 120 and body["spec"]["gates"]["max_error_rate"] == 2.5
    assert body["spec"]["min_requests"] == 10

    refused = studio("online-endpoint", "update", "-n", "ep1", "--traffic", "blue=100 green=0")
    assert_error(refused, "online endpoint 'ep1' has a rollout of 'green' in progress (Running, step 1 (25 %))")

    table = studio("online-endpoint", "rollout", "show", "--name", "ep1", "-o", "table")
    assert "Running" in table.stdout and "step 1 (25 %)" in table.stdout
    assert studio("online-endpoint", "rollout", "pause", "--name", "ep1").json()["state"] == "Paused"
    aborted = studio("online-endpoint", "rollout", "abort", "--name", "ep1").json()
    assert (aborted["state"], aborted["traffic"]) == ("Aborted", {"blue": 100, "green": 0})

    bad = studio("online-endpoint", "rollout", "start", "--name", "ep1", "--deployment", "green", "--steps", "10,x")
    assert_error(bad, "--steps: expected whole percentages such as 10,25,50,100, got '10,x'")

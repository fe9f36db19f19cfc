"""Whole stack: `studio up` (web, worker + beat, gateway) with real runtime instances, steady load through the
gateway, and rollouts that roll back, succeed, stay in the mirror, and survive a restart of the studio.

Time is shortened through settings (the gate interval) and the rollout's own durations; nothing sleeps for a
step's length: the test waits for what the CLI shows. The p99 gate is wide here: on a shared test machine a
cold instance's first answers are slow, and latency is not what these tests are about (tests/rollouts/test_gates.py
judges it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.cli.conftest import STUDIO, run
from tests.cli.test_up import free_port
from tests.endpoints.conftest import kill_instances

pytestmark = pytest.mark.e2e

START_TIMEOUT_S = 120
SCORE_PY = """\
import json, os

count = 0

def init():
    pass

def run(raw_data):
    global count
    count += 1
    mode = os.environ.get("MODE", "ok")
    if mode == "flaky" and count % 3 == 0:
        raise RuntimeError("every third request fails")
    return {"answer": 2 if mode == "differ" else 1}
"""
DEPLOYMENT_YML = """\
name: {name}
endpoint_name: {endpoint}
code_configuration:
  code: ./code/
  scoring_script: score.py
environment:
  image: python:3.11
instance_type: Standard_DS1_v2
instance_count: 1
environment_variables:
  MODE: {mode}
"""


@dataclass
class Stack:
    """One `studio up` on fixed free ports and its own STUDIO_HOME; stop() and start() it like a user would."""

    env: dict[str, str]
    folder: Path
    ports: tuple[int, int]
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        log = self.folder / f"up-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                [STUDIO, "up", "--port", str(self.ports[0]), "--gateway-port", str(self.ports[1])],
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Studio is up" not in log.read_text(errors="replace"):
            assert self.process.poll() is None, f"studio up exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"studio up did not start:\n{self.output()}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # Ctrl-C: `studio up` stops its web, worker, gateway and Redis (tests/cli/test_up.py checks that);
        # instances run in their own sessions and are re-adopted by the next start.
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for proc in psutil.Process(self.process.pid).children(recursive=True):
                proc.kill()
            self.process.kill()

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace")[-3000:] for log in self.logs)

    def cli(self, *args: str) -> Any:
        result = run(args, self.env, cwd=self.folder, timeout=300)
        assert result.code == 0, f"studio {' '.join(args)}:\n{result.stderr}\n--- studio up:\n{self.output()}"
        return json.loads(result.stdout) if result.stdout.strip() else None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = Path(os.path.realpath(tmp_path_factory.mktemp("ro")))
    (folder / "code").mkdir()
    (folder / "code" / "score.py").write_text(SCORE_PY)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("STUDIO_") and key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        STUDIO_HOME=str(folder / "h"),
        STUDIO_ROLLOUT_GATE_INTERVAL_MS="500",
        STUDIO_GATEWAY_MIRROR_SAMPLE_PERCENT="100",
    )
    running = Stack(env=env, folder=folder, ports=(free_port(), free_port()))
    running.start()
    try:
        yield running
    finally:
        running.stop()
        # The gateway is detached and re-adopted across the restart test: only `studio down` stops it.
        run(("down", "--instances"), env, timeout=60)
        kill_instances(folder / "h" / "instances")


class Load:
    """Steady requests to the endpoint through the gateway (about 60 a second), counted per deployment."""

    def __init__(self, stack: Stack, endpoint: str) -> None:
        shown = stack.cli("online-endpoint", "show", "-n", endpoint)
        key = stack.cli("online-endpoint", "get-credentials", "-n", endpoint)["primaryKey"]
        self.url = shown["scoring_uri"]
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.served: Counter[str] = Counter()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stopped.is_set():
                try:
                    answer = client.post(self.url, content=b'{"x": 1}', headers=self.headers)
                    self.served[answer.headers.get("azureml-model-deployment", "?")] += 1
                except httpx.HTTPError:
                    self.served["failed"] += 1
                time.sleep(0.015)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=15)


def deploy(stack: Stack, endpoint: str, *, green_mode: str) -> None:
    (stack.folder / f"{endpoint}.yml").write_text(f"name: {endpoint}\nauth_mode: key\n")
    stack.cli("online-endpoint", "create", "-f", f"{endpoint}.yml")
    for name, mode in (("blue", "ok"), ("green", green_mode)):
        path = stack.folder / f"{endpoint}-{name}.yml"
        path.write_text(DEPLOYMENT_YML.format(name=name, endpoint=endpoint, mode=mode))
        stack.cli("online-deployment", "create", "-f", path.name, *(["--all-traffic"] if name == "blue" else []))


def wait_for(stack: Stack, endpoint: str, states: tuple[str, ...], timeout_s: float = 120, **where: Any) -> Any:
    deadline = time.monotonic() + timeout_s
    shown: Any = None
    while time.monotonic() < deadline:
        shown = stack.cli("online-endpoint", "rollout", "show", "--name", endpoint)
        if shown["state"] in states and all(shown.get(k) == v for k, v in where.items()):
            return shown
        time.sleep(0.3)
    raise AssertionError(f"rollout of {endpoint} never reached {states} {where}: {shown}\n{stack.output()}")


def test_a_target_failing_a_third_of_requests_rolls_back_at_the_first_step(stack: Stack) -> None:
    deploy(stack, "ro-flaky", green_mode="flaky")
    with Load(stack, "ro-flaky") as load:
        stack.cli(
            "online-endpoint", "rollout", "start", "--name", "ro-flaky", "--deployment", "green",
            "--steps", "20,100", "--step-duration", "60s", "--min-requests", "30", "--max-p99-ratio", "50",
        )  # fmt: skip
        done = wait_for(stack, "ro-flaky", ("RolledBack", "Succeeded", "Aborted"))
        served_green_at_rollback = load.served["green"]
        time.sleep(1.5)  # the gateway polls the routing version every 200 ms: nothing more reaches green
        assert load.served["green"] - served_green_at_rollback <= 2
    assert done["state"] == "RolledBack", done
    assert done["step"] == 1
    last = done["events"][-1]
    assert last["reason"] == "RolloutRolledBack"
    assert last["message"].startswith("step 1 (20 %): error rate ")
    rate = float(last["message"].split("error rate ")[1].split(" %")[0])
    assert 20 <= rate <= 45, last["message"]  # about a third of green's answers failed
    assert last["message"].endswith("rolled back to blue=100")
    shown = stack.cli("online-endpoint", "show", "-n", "ro-flaky")
    assert (shown["traffic"], shown["mirror_traffic"]) == ({"blue": 100, "green": 0}, {})


def test_with_mirror_first_a_target_that_answers_differently_never_gets_live_traffic(stack: Stack) -> None:
    deploy(stack, "ro-differ", green_mode="differ")
    with Load(stack, "ro-differ") as load:
        stack.cli(
            "online-endpoint", "rollout", "start", "--name", "ro-differ", "--deployment", "green",
            "--steps", "20,100", "--step-duration", "2s", "--min-requests", "20",
            "--mirror-percent", "50", "--mirror-duration", "2s", "--min-agreement", "99",
        )  # fmt: skip
        done = wait_for(stack, "ro-differ", ("RolledBack", "Succeeded", "Aborted"))
    assert done["state"] == "RolledBack", done
    assert done["events"][-1]["message"].startswith("mirror (50 %): agreement 0.0 % < 99 % over ")
    assert load.served["green"] == 0, load.served  # mirrored copies only: no live answer ever came from green
    assert load.served["blue"] > 0
    shown = stack.cli("online-endpoint", "show", "-n", "ro-differ")
    assert (shown["traffic"], shown["mirror_traffic"]) == ({"blue": 100, "green": 0}, {})


def test_a_healthy_rollout_survives_a_studio_restart_mid_step_and_succeeds_at_100(stack: Stack) -> None:
    deploy(stack, "ro-good", green_mode="ok")
    with Load(stack, "ro-good"):
        stack.cli(
            "online-endpoint", "rollout", "start", "--name", "ro-good", "--deployment", "green",
            "--steps", "20,100", "--step-duration", "6s", "--min-requests", "30", "--max-p99-ratio", "50",
        )  # fmt: skip
        before = wait_for(stack, "ro-good", ("Running",), step=1)
    stack.stop()
    stack.start()
    after = stack.cli("online-endpoint", "rollout", "show", "--name", "ro-good")
    assert (after["state"], after["step"], after["traffic"]) == ("Running", 1, {"blue": 80, "green": 20})
    assert after["time_left_s"] <= before["time_left_s"] + 0.01  # its clock carried on from where it was
    with Load(stack, "ro-good") as load:
        done = wait_for(stack, "ro-good", ("Succeeded", "RolledBack", "Aborted"))
        assert done["state"] == "Succeeded", done
        time.sleep(1)
        green_before = load.served["green"]
        blue_before = load.served["blue"]
        time.sleep(1.5)
        assert load.served["blue"] - blue_before <= 2 and load.served["green"] > green_before
    assert done["state"] == "Succeeded", done
    assert done["traffic"] == {"blue": 0, "green": 100}
    assert [e["reason"] for e in done["events"]] == ["RolloutStarted", "RolloutStep", "RolloutStep", "RolloutSucceeded"]

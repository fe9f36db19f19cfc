"""`studio up` as a user runs it: a subprocess on free ports with its own STUDIO_HOME, the embedded
defaults (SQLite, its own Redis), the CLI working right after, and nothing left behind on exit.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.cli.conftest import ENDPOINT_YML, STUDIO, run

START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Up:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)


def survivors(processes: list[psutil.Process]) -> list[str]:
    """What still runs of `processes`, but the detached gateway (it keeps serving until `studio down`)."""
    left = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE and not is_gateway(proc):
                left.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return left


def is_gateway(proc: psutil.Process) -> bool:
    """The detached (plain HTTP) gateway; its HTTPS twin is a supervised child that stops with `studio up`."""
    cmdline = proc.cmdline()
    return "-m" in cmdline and "gateway" in cmdline and "--ssl-certfile" not in cmdline


@pytest.fixture
def up_env(tmp_path: Path) -> dict[str, str]:
    """A clean user environment: no database or Redis configured, a fresh STUDIO_HOME."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("STUDIO_") and key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    # Short: the embedded Redis listens on a unix socket under it (108-byte limit).
    home = Path(os.path.realpath(tmp_path)) / "h"
    env["STUDIO_HOME"] = str(home)
    return env


@pytest.fixture
def start_up(up_env: dict[str, str], tmp_path: Path) -> Iterator[object]:
    started: list[Up] = []
    ports = (free_port(), free_port())

    def start(name: str, cwd: Path | None = None) -> Up:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [STUDIO, "up", "--port", str(ports[0]), "--gateway-port", str(ports[1])],
                env=up_env,
                cwd=cwd,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        up = Up(process, log)
        started.append(up)
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Studio is up" not in up.output():
            assert process.poll() is None, f"studio up exited with {process.returncode}:\n{up.output()}"
            assert time.monotonic() < deadline, f"studio up did not start:\n{up.output()}"
            time.sleep(0.2)
        return up

    yield start
    stop_all(started, up_env)


def stop_all(started: list[Up], up_env: dict[str, str]) -> None:
    """Stop what a test started: each `studio up` (Ctrl-C), then the detached gateway (`studio down`)."""
    for up in started:  # a failed assertion must not leave a stack running
        if up.process.poll() is None:
            leftovers = up.descendants()
            up.process.send_signal(signal.SIGINT)
            try:
                up.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                up.process.kill()
            for proc in leftovers:
                try:
                    proc.kill()
                except psutil.NoSuchProcess:
                    pass
    if started:
        subprocess.run([STUDIO, "down"], env=up_env, capture_output=True, timeout=60, check=False)


def stop_with_ctrl_c(up: Up) -> int:
    up.process.send_signal(signal.SIGINT)
    return up.process.wait(timeout=60)


def test_studio_up_serves_the_cli_stops_cleanly_and_keeps_data_on_restart(
    start_up: object, up_env: dict[str, str], tmp_path: Path
) -> None:
    home = Path(up_env["STUDIO_HOME"])
    (tmp_path / "endpoint.yml").write_text(ENDPOINT_YML)

    first = start_up("first")  # type: ignore[operator]
    output = first.output()
    password = (home / "admin-password").read_text().strip()
    assert re.search(rf"Admin:\s+admin / {re.escape(password)}", output), output
    assert (home / "admin-password").stat().st_mode & 0o777 == 0o600
    config = json.loads((home / "cli.json").read_text())
    assert f"Studio is up:  {config['url']}" in output
    assert "Gateway:       http://127.0.0.1:" in output

    # The CLI finds the studio through $STUDIO_HOME/cli.json, with nothing else configured.
    created = run(("online-endpoint", "create", "-n", "ep1", "-f", "endpoint.yml"), up_env, cwd=tmp_path)
    assert created.code == 0, created.stderr
    keys = run(("online-endpoint", "get-credentials", "-n", "ep1"), up_env).json()
    assert run(("online-endpoint", "list", "--query", "[].name"), up_env).json() == ["ep1"]

    # The banner stays on screen: beat sends a periodic task every 2 s, and none of that is printed.
    time.sleep(5)
    after_banner = first.output().split("Press Ctrl-C to stop.", 1)[1]
    assert "studio@" in after_banner and " ready." in after_banner  # the worker (with beat) did start
    assert "Sending due task" not in after_banner and "succeeded in" not in after_banner, after_banner

    children = first.descendants()
    assert {"uvicorn", "celery", "redis-server"} <= {
        word for proc in children for word in ("uvicorn", "celery", "redis-server") if word in " ".join(proc.cmdline())
    }
    assert stop_with_ctrl_c(first) == 0
    assert survivors(children) == []

    second = start_up("second")
    assert password not in second.output()  # shown once only
    assert f"(password in {home / 'admin-password'})" in second.output()
    assert run(("online-endpoint", "list", "--query", "[].name"), up_env).json() == ["ep1"]
    assert run(("online-endpoint", "get-credentials", "-n", "ep1"), up_env).json() == keys
    deleted = run(("online-endpoint", "delete", "-n", "ep1", "--yes"), up_env)
    assert deleted.code == 0, deleted.stderr

    # A child that dies is restarted, with one line saying which and how; the studio keeps running.
    web = next(proc for proc in second.descendants() if "uvicorn" in " ".join(proc.cmdline()))
    web.kill()
    deadline = time.monotonic() + 60
    while "the web server was killed by signal 9 (SIGKILL)" not in second.output():
        assert time.monotonic() < deadline, second.output()
        time.sleep(0.2)
    assert re.search(r"restarting it in [0-9.]+ s \(restart 1\)", second.output()), second.output()
    deadline = time.monotonic() + 60
    while run(("online-endpoint", "list"), up_env).code != 0:
        assert time.monotonic() < deadline, second.output()
        time.sleep(0.5)
    assert second.process.poll() is None
    children = second.descendants()
    assert stop_with_ctrl_c(second) == 0
    assert survivors(children) == []


def test_studio_up_takes_the_admin_from_the_environment_and_stops_on_sigterm(
    start_up: object, up_env: dict[str, str]
) -> None:
    up_env.update(STUDIO_ADMIN_USER="ops", STUDIO_ADMIN_PASSWORD="a-long-secret-from-the-vault")
    up = start_up("env-admin")  # type: ignore[operator]
    assert re.search(r"Admin:\s+ops\s+\(from STUDIO_ADMIN_PASSWORD\)", up.output()), up.output()
    assert "a-long-secret-from-the-vault" not in up.output()
    assert not (Path(up_env["STUDIO_HOME"]) / "admin-password").exists()
    assert run(("online-endpoint", "list"), up_env).json() == []
    children = up.descendants()
    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=60) == 0
    assert survivors(children) == []


def test_studio_up_refuses_a_busy_port(up_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(("up", "--port", str(port), "--gateway-port", str(free_port())), up_env)
    assert result.code == 1
    assert f"ERROR: --port: port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


SCORING_DEPLOYMENT_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: ep1
model:
  path: ./model/sklearn_regression_model.pkl
code_configuration:
  code: ./onlinescoring/
  scoring_script: score.py
environment:
  image: python:3.11
instance_type: Standard_DS2_v2
instance_count: 1
"""


@pytest.mark.e2e
def test_studio_up_deploys_scores_and_deletes_with_the_cli(
    start_up: object, up_env: dict[str, str], azure_files: Path
) -> None:
    (azure_files / "endpoint.yml").write_text(ENDPOINT_YML.replace("my-endpoint", "ep1"))
    (azure_files / "blue-deployment.yml").write_text(SCORING_DEPLOYMENT_YML)
    up = start_up("whole")  # type: ignore[operator]

    def cli(*args: str) -> Any:
        result = run(args, up_env, cwd=azure_files, timeout=300)
        assert result.code == 0, f"studio {' '.join(args)}:\n{result.stderr}\n--- studio up:\n{up.output()[-4000:]}"
        return result

    cli("online-endpoint", "create", "-f", "endpoint.yml")
    created = cli("online-deployment", "create", "-f", "blue-deployment.yml", "--all-traffic")
    assert created.json()["provisioning_state"] == "Succeeded"
    assert "ep1: all traffic to blue" in created.stderr
    answer = cli("online-endpoint", "invoke", "-n", "ep1", "--request-file", "sample-request.json")
    assert json.loads(answer.stdout)["echo"] == {"data": [[1, 2, 3]]}
    assert cli("online-deployment", "get-logs", "-n", "blue", "-e", "ep1").stdout.strip()
    # Deleting waits until the worker has stopped the instances, so nothing outlives the test.
    cli("online-endpoint", "delete", "-n", "ep1", "--yes")
    assert stop_with_ctrl_c(up) == 0

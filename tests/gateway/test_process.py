"""`python -m gateway` as its own process, the way `studio up` and the Kubernetes manifest run it.

It gets its own STUDIO_HOME (a SQLite file migrated here, and the routing rows written by a child process),
since a separate process cannot see the test database; it shares the suite's Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

from tests.gateway.conftest import REPO, free_port

ROWS = """
import django
django.setup()
from apps.endpoints.models import Deployment, Endpoint, Environment, Instance
environment = Environment.objects.create(name="env", version="1", image="python:3.11")
endpoint = Endpoint.objects.create(name="ep1", primary_key="process-test-key-0123456789",
                                   secondary_key="other-0123456789", token_secret="x", traffic={"blue": 100})
deployment = Deployment.objects.create(endpoint=endpoint, name="blue", environment=environment,
                                       instance_type="Standard_DS2_v2", state="Succeeded")
Instance.objects.create(deployment=deployment, name="blue-0", address="ADDRESS", state="Ready", ready=True)
"""


def test_the_gateway_runs_as_its_own_process_and_stops_on_sigterm(start_instance, tmp_path: Path) -> None:
    blue = start_instance("blue-0")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(STUDIO_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO), DJANGO_SETTINGS_MODULE="studio.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True, timeout=300)
    rows = textwrap.dedent(ROWS).replace("ADDRESS", blue.address)
    subprocess.run([sys.executable, "-c", rows], cwd=REPO, env=env, check=True, timeout=120)
    port = free_port()
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/endpoints/ep1/score"
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.post(
                    url, json={"a": 1}, headers={"Authorization": "Bearer process-test-key-0123456789"}
                )
                break
            except httpx.TransportError:
                assert gateway.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)

        assert response.status_code == 200
        assert response.json() == {"instance": "blue-0", "echo": {"a": 1}}
        assert response.headers["azureml-model-deployment"] == "blue"
    finally:
        gateway.send_signal(signal.SIGTERM)
        code = gateway.wait(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught, so the exit is "killed by SIGTERM"
    assert code in (0, -signal.SIGTERM), log.read_text()
    assert "Traceback" not in log.read_text()
    assert "process-test-key-0123456789" not in log.read_text()


def test_bad_flags_exit_with_a_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--workers", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "--workers must be at least 1, got 0" in result.stderr

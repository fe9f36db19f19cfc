"""A real `studio up` (web, gateway, worker, HTTPS) for Azure's own SDK to talk to, one per test module."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.cli.conftest import STUDIO
from tests.cli.test_up import free_port
from tests.endpoints.conftest import kill_instances

START_TIMEOUT_S = 120
WS = "/azure/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
STORE = "/azure/storage/studio.blob.local/studio-blobstore"


@dataclass
class LiveStudio:
    """A running studio: its environment for the CLI, and what `studio sdk-env` printed."""

    env: dict[str, str]
    home: Path
    sdk_env: dict[str, str]
    log: Path

    def cli(self, *args: str, cwd: Path | None = None, ok: bool = True) -> Any:
        """`studio <args>` as a user runs it; what it prints, parsed when JSON (stderr when it fails)."""
        done = subprocess.run(
            [STUDIO, *args], env=self.env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
        )
        if not ok:
            assert done.returncode == 1, (done.stdout, done.stderr)
            return done.stderr
        assert done.returncode == 0, (args, done.stdout, done.stderr, self.log.read_text()[-3000:])
        try:
            return json.loads(done.stdout) if done.stdout.strip() else None
        except ValueError:
            return done.stdout  # get-logs prints the log as it is


def _sdk_env(env: dict[str, str]) -> dict[str, str]:
    """The `export NAME=value` lines of `studio sdk-env`."""
    done = subprocess.run([STUDIO, "sdk-env"], env=env, capture_output=True, text=True, timeout=60, check=True)
    found = {}
    for line in done.stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            found[name] = value
    return found


@pytest.fixture(scope="module")
def live_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStudio]:
    """`studio up` on free ports with a fresh STUDIO_HOME; environments built once per test run."""
    root = Path(os.path.realpath(tmp_path_factory.mktemp("arm")))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("STUDIO_") and key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    env["STUDIO_HOME"] = str(root / "h")  # short: the embedded Redis's unix socket lives under it
    env["STUDIO_ENVS_DIR"] = str(tmp_path_factory.getbasetemp() / "arm-envs")
    env["STUDIO_OBSERVE_INTERVAL_S"] = "1"
    ports = [free_port() for _ in range(4)]
    argv = [STUDIO, "up", "--port", str(ports[0]), "--gateway-port", str(ports[1])]
    argv += ["--https-port", str(ports[2]), "--gateway-https-port", str(ports[3])]
    log = root / "up.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Studio is up" not in log.read_text(errors="replace"):
            assert process.poll() is None, f"studio up exited with {process.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"studio up did not start:\n{log.read_text()}"
            time.sleep(0.2)
        yield LiveStudio(env=env, home=Path(env["STUDIO_HOME"]), sdk_env=_sdk_env(env), log=log)
    finally:
        leftovers = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        for proc in leftovers:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        kill_instances(Path(env["STUDIO_HOME"]) / "instances")


@pytest.fixture
def ml_client(live_studio: LiveStudio, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An MLClient built exactly as `studio sdk-env` says, with its two environment variables."""
    from azure.ai.ml import MLClient
    from azure.core.credentials import AccessToken

    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)  # the SDK sets it from the metadata URL
    for name, value in live_studio.sdk_env.items():
        monkeypatch.setenv(name, value)

    class StudioToken:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(os.environ["STUDIO_TOKEN"], 2**31 - 1)

    return MLClient(StudioToken(), subscription_id="local", resource_group_name="studio", workspace_name="studio")


@pytest.fixture
def arm(db: None, settings: Any, tmp_path: Path) -> Any:
    """An ARM client signed in with an API token as the bearer token, as azure-ai-ml is."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from tests import factories

    settings.MEDIA_ROOT = tmp_path / "media"
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=factories.user())
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key}")
    return client

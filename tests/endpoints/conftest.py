"""Fixtures for the local backend: a shared environments folder, short back-offs, and no process left behind."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

SCORE_PY = """\
import json, os, time

def init():
    global model_dir
    model_dir = os.environ["AZUREML_MODEL_DIR"]
    if os.environ.get("FAIL_INIT"):
        raise RuntimeError("model weights are corrupt: " + os.environ["FAIL_INIT"])
    time.sleep(float(os.environ.get("INIT_SLEEP_S", "0")))
    sleep_file = os.environ.get("INIT_SLEEP_FILE")
    if sleep_file and os.path.exists(sleep_file):
        time.sleep(float(open(sleep_file).read()))
    gate = os.environ.get("INIT_GATE")
    if gate and not os.path.exists(gate):
        raise RuntimeError("the gate file is missing: " + gate)

def run(raw_data):
    data = json.loads(raw_data)
    return {
        "echo": data,
        "model_files": sorted(os.listdir(model_dir)),
        "version": os.environ.get("VERSION", "1"),
        "pid": os.getpid(),
    }
"""


@pytest.fixture(scope="session")
def envs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One environments folder for the whole run: equal specs are built once, as in a real studio."""
    return tmp_path_factory.mktemp("envs")


@pytest.fixture
def local(settings: Any, envs_dir: Path) -> Iterator[Path]:
    """Settings for the local backend in tests; every instance process is killed at teardown."""
    settings.STUDIO_BACKEND = "local"
    settings.STUDIO_ENVS_DIR = envs_dir
    settings.STUDIO_DRAIN_MS = 300
    settings.STUDIO_RESTART_BACKOFF_MS = 200
    settings.STUDIO_CRASHLOOP_RESTARTS = 3
    instances = Path(settings.STUDIO_INSTANCES_DIR)
    yield instances
    kill_instances(instances)


def instance_pids(instances: Path) -> list[int]:
    """Pids of the live instance processes recorded under `instances` (create time checked)."""
    pids = []
    for path in instances.glob("*/*/state.json"):
        state = json.loads(path.read_text())
        pid, created = state.get("pid"), state.get("create_time")
        if not pid:
            continue
        try:
            process = psutil.Process(pid)
            if created is None or abs(process.create_time() - created) < 0.05:
                if process.status() != psutil.STATUS_ZOMBIE:
                    pids.append(pid)
        except psutil.Error:
            pass
    return pids


def kill_instances(instances: Path) -> None:
    for pid in instance_pids(instances):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def runtime_processes(instances: Path) -> list[psutil.Process]:
    """Every `python -m runtime` process whose working folder is under `instances` (duplicates included)."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        try:
            cmdline = process.info["cmdline"] or []
            cwd = process.info["cwd"] or ""
            if "runtime" in cmdline and cwd.startswith(str(instances)) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            pass
    return found


def gateway_headers(address: str) -> dict[str, str]:
    """The secret header the gateway sends to the instance at `address` (found by its port in the state files)."""
    from django.conf import settings

    from gateway.wire import INSTANCE_SECRET_HEADER, instance_secret

    port = int(address.rstrip("/").rsplit(":", 1)[1])
    for path in Path(settings.STUDIO_INSTANCES_DIR).glob("*/*/state.json"):
        state = json.loads(path.read_text())
        if state.get("port") == port:
            secret = instance_secret(
                settings.SECRET_KEY, deployment_uid=path.parent.parent.name, instance=state["name"], port=port
            )
            return {INSTANCE_SECRET_HEADER: secret}
    return {}


def score(address: str, payload: Any, timeout: float = 10) -> httpx.Response:
    """Score an instance as the gateway does (with its secret header)."""
    return httpx.post(f"{address}/score", json=payload, timeout=timeout, headers=gateway_headers(address))


class Client:
    """A client loop that, like the gateway, sends each request to a currently ready instance."""

    def __init__(self, addresses: Callable[[], list[str]]) -> None:
        self.addresses = addresses
        self.ok = 0
        self.failures: list[str] = []
        self.versions: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            turn = 0
            while not self._stop.is_set():
                ready = self.addresses()
                if not ready:
                    self.failures.append("no ready instance")
                    time.sleep(0.02)
                    continue
                address = ready[turn % len(ready)]
                turn += 1
                try:
                    answer = client.post(f"{address}/score", json={"n": turn}, headers=gateway_headers(address))
                    if answer.status_code == 200:
                        self.ok += 1
                        self.versions.add(answer.json()["version"])
                    else:
                        self.failures.append(f"{address}: {answer.status_code} {answer.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(f"{address}: {exc!r}")
                time.sleep(0.01)

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

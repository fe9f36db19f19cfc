"""Both HTTP servers as real processes, for one set of protocol tests: `python -m runtime` (the inference
server) and `python -m gateway` (the scoring gateway, routing to that same runtime).

Both run with short deadlines (head 1 s, body 2 s, keep-alive 2 s), set the way users set them: flags for the
runtime, STUDIO_GATEWAY_* variables for the gateway. The other limits keep their defaults. The gateway gets
its own STUDIO_HOME (a SQLite file migrated here, the routing rows written by a child process), since a
separate process cannot see the test database; it shares the suite's Redis under its own metrics list.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

REPO = Path(__file__).resolve().parents[2]
KEY = "http-edge-test-key-0123456789abcdef"
DEADLINES = {"head_timeout_s": "1", "body_timeout_s": "2", "keep_alive_s": "2"}

# Echoes what it got, so that an answer shows which request it belongs to and that the body arrived whole.
SCORE_PY = """
def init():
    pass


def run(data):
    return {"length": len(data), "data": data[:64]}
"""

ROWS = """
import django
django.setup()
from apps.endpoints.models import Deployment, Endpoint, Environment, Instance
environment = Environment.objects.create(name="env", version="1", image="python:3.11")
endpoint = Endpoint.objects.create(name="ep1", primary_key="KEY", secondary_key="other-0123456789abcdef",
                                   token_secret="x", traffic={"blue": 100})
deployment = Deployment.objects.create(endpoint=endpoint, name="blue", environment=environment,
                                       instance_type="Standard_DS2_v2", state="Succeeded",
                                       request_settings={"max_concurrent_requests_per_instance": 64})
Instance.objects.create(deployment=deployment, name="blue-0", address="ADDRESS", state="Ready", ready=True)
"""


@dataclass
class Target:
    """A server under test, and how a scoring request to it is written."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    score_path: str
    auth: tuple[str, ...]  # header lines that authorize a scoring request
    log: Path

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=15)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def score(self, body: bytes, *extra: str, authorized: bool = True, path: str | None = None) -> bytes:
        """A scoring request as bytes; Content-Length unless `extra` sets a Transfer-Encoding."""
        lines = [f"POST {path or self.score_path} HTTP/1.1", "Host: server", *(self.auth if authorized else ())]
        lines += extra
        if not any(line.lower().startswith(("transfer-encoding", "content-length")) for line in extra):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **extra)
    return env


def start_runtime(folder: Path, *flags: str) -> Target:
    """`python -m runtime` serving SCORE_PY with the given extra flags."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model").mkdir(exist_ok=True)
    (folder / "score.py").write_text(textwrap.dedent(SCORE_PY))
    port = free_port()
    command = [sys.executable, "-m", "runtime", "--entry_script", "score.py", "--model_dir", "model",
               "--host", "127.0.0.1", "--port", str(port), *flags]  # fmt: skip
    log = folder / "server.log"
    env = {k: v for k, v in _child_env().items() if k != "AML_APP_ROOT"}
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_listening(proc, port, log)
    return Target("runtime", proc, port, "/score", (), log)


@pytest.fixture(scope="session")
def runtime_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The inference server, with the short deadlines given as flags."""
    flags = ["--request_head_timeout_s", DEADLINES["head_timeout_s"],
             "--request_body_timeout_s", DEADLINES["body_timeout_s"],
             "--keep_alive_timeout_s", DEADLINES["keep_alive_s"]]  # fmt: skip
    target = start_runtime(tmp_path_factory.mktemp("runtime"), *flags)
    yield target
    stop(target.proc)


@dataclass
class GatewayHome:
    """A migrated STUDIO_HOME whose routing rows send endpoint ep1 to the runtime under test."""

    env: dict[str, str]
    folder: Path

    def start(self, **settings: str) -> Target:
        """`python -m gateway` with the given STUDIO_GATEWAY_* settings (names without the prefix)."""
        port = free_port()
        env = {**self.env, **{f"STUDIO_GATEWAY_{name.upper()}": value for name, value in settings.items()}}
        log = self.folder / f"gateway-{port}.log"
        command = [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(port)]
        with log.open("wb") as out:
            proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_listening(proc, port, log)
        return Target("gateway", proc, port, "/endpoints/ep1/score", (f"Authorization: Bearer {KEY}",), log)


@pytest.fixture(scope="session")
def gateway_home(tmp_path_factory: pytest.TempPathFactory, runtime_server: Target) -> Iterator[GatewayHome]:
    folder = tmp_path_factory.mktemp("gateway")
    queue = f"test:http-edge-metrics:{uuid.uuid4().hex}"
    env = _child_env(
        STUDIO_HOME=str(folder / "home"), DJANGO_SETTINGS_MODULE="studio.settings", STUDIO_GATEWAY_METRICS_QUEUE=queue
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True, timeout=300)
    rows = textwrap.dedent(ROWS).replace("ADDRESS", f"http://127.0.0.1:{runtime_server.port}").replace("KEY", KEY)
    subprocess.run([sys.executable, "-c", rows], cwd=REPO, env=env, check=True, timeout=120)
    yield GatewayHome(env, folder)
    redis.Redis.from_url(os.environ["REDIS_URL"]).delete(queue)


@pytest.fixture(scope="session")
def gateway_server(gateway_home: GatewayHome) -> Iterator[Target]:
    """The scoring gateway, with the short deadlines given as STUDIO_GATEWAY_* variables."""
    target = gateway_home.start(**DEADLINES)
    yield target
    stop(target.proc)


@pytest.fixture(params=["runtime", "gateway"])
def server(request: pytest.FixtureRequest) -> Target:
    """Each test that takes `server` runs once against each server."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]


@pytest.fixture(params=["runtime", "gateway"])
def start_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Target]]:
    """Start a server of each kind with other limits: `start(max_connections=3)` (Limits' field names)."""
    started: list[Target] = []
    runtime_flags = {"max_connections": "--max_connections", "max_head_bytes": "--max_request_head_bytes"}

    def start(**limits: str) -> Target:
        if request.param == "runtime":
            flags = [arg for name, value in limits.items() for arg in (runtime_flags[name], value)]
            target = start_runtime(tmp_path / f"runtime-{len(started)}", *flags)
        else:
            home: GatewayHome = request.getfixturevalue("gateway_home")
            target = home.start(**limits)
        started.append(target)
        return target

    yield start
    for target in started:
        stop(target.proc)

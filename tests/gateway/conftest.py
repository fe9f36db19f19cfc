"""Gateway fixtures: real inference-server processes, real rows in the test database, and the gateway
served by uvicorn on a real port (in a thread of the test process, so that it reads the same test
database, SQLite in memory included, the way Django's live_server does).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps.core.keys import redis_key

REPO = Path(__file__).resolve().parents[2]

# One score.py for every test: echoes which instance answered; the request can ask it to sleep, to fail, or to
# hold its answer until the test creates a file (the gate, given in the request or in GATE_FILE).
SCORE_PY = """
import json
import os
import time

from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


def run(raw_data):
    data = json.loads(raw_data) if raw_data else {}
    if not isinstance(data, dict):
        data = {"data": data}
    delay = float(data.get("sleep") or os.environ.get("SLEEP_S") or 0)
    if delay:
        time.sleep(delay)
    gate = data.get("gate") or os.environ.get("GATE_FILE")
    deadline = time.monotonic() + 60
    while gate and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    if data.get("status"):
        return AMLResponse(json.dumps({"message": "the model says no"}), int(data["status"]))
    return {"instance": os.environ.get("INSTANCE_NAME", ""), "echo": data}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RuntimeProcess:
    """A running `python -m runtime` (what `studio-infsrv` runs) serving SCORE_PY."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def scored(self) -> int:
        """How many /score requests this instance answered (from its own /metrics)."""
        text = httpx.get(f"{self.address}/metrics", timeout=10).text
        total = 0
        for line in text.splitlines():
            if line.startswith("infsrv_requests_total{") and 'route="/score"' in line:
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def start_instance(tmp_path: Path) -> Iterator[Callable[..., RuntimeProcess]]:
    """Start real inference-server processes with SCORE_PY; all stopped at the end of the test."""
    started: list[RuntimeProcess] = []

    def start(name: str, env: dict[str, str] | None = None) -> RuntimeProcess:
        app_dir = tmp_path / f"instance-{name}"
        (app_dir / "model").mkdir(parents=True)
        (app_dir / "score.py").write_text(textwrap.dedent(SCORE_PY))
        port = free_port()
        environ = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "AML_APP_ROOT")}
        environ.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", INSTANCE_NAME=name, **(env or {}))
        command = [sys.executable, "-m", "runtime", "--entry_script", "score.py", "--model_dir", "model",
                   "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
        log_path = app_dir / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(command, cwd=app_dir, env=environ, stdout=log, stderr=subprocess.STDOUT)
        instance = RuntimeProcess(name, proc, port, log_path)
        started.append(instance)
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"instance {name} exited:\n{log_path.read_text()}")
            try:
                if httpx.get(instance.address + "/", timeout=1).status_code == 200:
                    return instance
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"instance {name} did not start:\n{log_path.read_text()}")
            time.sleep(0.05)

    yield start
    for instance in started:
        instance.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A gateway reads the database from its own thread, so its tests need committed rows."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents and {"gateway", "start_gateway"} & set(item.fixturenames):
            item.add_marker(pytest.mark.django_db(transaction=True))


@pytest.fixture(autouse=True)
def _no_reconcile(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests run their own instances and write the Instance rows themselves; a reconcile started
    by creating a deployment would start other instances behind the test's back.
    """
    from apps.endpoints import services

    monkeypatch.setattr(services, "_queue_reconcile", lambda deployment: None)


def routing_changed(*names: str) -> None:
    """What services do after a routing change commits: publish it on the change feed (no names: everything)."""
    from apps.core.notify import publish

    publish(list(names) or ["*"])


def make_endpoint(name: str = "ep1", **spec: Any) -> Any:
    from tests import factories

    return factories.endpoint(name, **spec)


def make_deployment(endpoint: Any, name: str, *instances: RuntimeProcess | str, **request_settings: int) -> Any:
    """A deployment row with ready Instance rows at the given processes (or bare addresses)."""
    from apps.endpoints.models import Instance
    from tests import factories

    overrides: dict[str, Any] = {}
    if request_settings:
        overrides["request_settings"] = request_settings
    deployment = factories.deployment(endpoint, name, **overrides)
    for index, instance in enumerate(instances):
        address = instance.address if isinstance(instance, RuntimeProcess) else instance
        Instance.objects.create(
            deployment=deployment, name=f"{name}-{index}", address=address, state=Instance.State.READY, ready=True
        )
    routing_changed()
    return deployment


def set_traffic(endpoint: Any, traffic: dict[str, int], mirror: dict[str, int] | None = None) -> Any:
    from apps.endpoints import services

    return services.traffic_set(endpoint=endpoint, traffic=traffic, mirror_traffic=mirror or {})


@dataclass
class RunningGateway:
    """The gateway application served by uvicorn on 127.0.0.1:<port>."""

    app: Any
    server: Any
    thread: threading.Thread
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> Any:
        return self.app.gateway

    def score_url(self, endpoint: str) -> str:
        return f"{self.url}/endpoints/{endpoint}/score"

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> float:
        """Seconds until the predicate held (fails after `timeout`: generous, a busy machine is slow)."""
        began = time.monotonic()
        while not predicate():
            if time.monotonic() - began > timeout:
                raise AssertionError(f"condition not met within {timeout}s")
            time.sleep(0.02)
        return time.monotonic() - began

    def stop(self) -> None:
        """Stop serving, as on SIGTERM: the gateway pushes the metrics it still holds on its way out."""
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if self.thread.is_alive():  # a connection that never closes must not hang the suite
            self.server.force_exit = True
            self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the gateway did not stop"

    def knows(self, endpoint: str, deployment: str | None = None, *, instances: int | None = None) -> bool:
        """Whether the loaded routing table has the endpoint (and the deployment, with that many instances)."""
        table = self.state.config.table.get(endpoint)
        if table is None or deployment is None:
            return table is not None
        route = table.deployments.get(deployment)
        return route is not None and (instances is None or len(route.instances) == instances)

    def metrics_records(self) -> list[dict[str, Any]]:
        """Every MetricsRecord the gateway pushed so far (read without draining)."""
        from apps.core.notify import redis_client

        raw = redis_client().lrange(self.state.settings.metrics_queue, 0, -1)
        return [json.loads(item) for item in raw]


@pytest.fixture
def start_gateway(transactional_db: None) -> Iterator[Callable[..., RunningGateway]]:
    """Serve a fresh gateway (own state, own metrics list in Redis) with uvicorn; stopped at the end."""
    import uvicorn
    from django.db import connections

    from apps.core.notify import redis_client
    from gateway.app import create_application
    from gateway.config import GatewaySettings
    from gateway.proxy import Gateway
    from gateway.server import GatewayHttpProtocol
    from gateway.source import DatabaseSource
    from runtime.http11 import Limits

    running: list[RunningGateway] = []
    connection = connections["default"]
    shared = connection.vendor == "sqlite" and connection.is_in_memory_db()
    if shared:
        # An in-memory SQLite test database exists only in this connection: the gateway's DB thread borrows
        # it, exactly as Django's LiveServerThread does.
        connection.inc_thread_sharing()

    def borrow_connection() -> None:
        if shared:
            connections["default"] = connection

    def start(keep_alive_s: float = 5, **overrides: Any) -> RunningGateway:
        settings = GatewaySettings(
            metrics_queue=redis_key(f"gateway-metrics:{uuid.uuid4().hex}"),
            http=Limits(keep_alive_s=keep_alive_s),
            **overrides,
        )
        app = create_application(gateway=Gateway(settings, DatabaseSource(), db_thread_init=borrow_connection))
        port = free_port()
        protocol = functools.partial(GatewayHttpProtocol, limits=settings.http)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, loop="uvloop", http=protocol,  # type: ignore[arg-type]
                                lifespan="on", log_level="warning", access_log=False)  # fmt: skip
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"gateway-{port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("the gateway did not start")
            time.sleep(0.02)
        gateway = RunningGateway(app, server, thread, port)
        running.append(gateway)
        return gateway

    yield start
    for gateway in running:
        gateway.stop()
        redis_client().delete(gateway.state.settings.metrics_queue)
    if shared:
        connection.dec_thread_sharing()


@pytest.fixture
def gateway(start_gateway: Callable[..., RunningGateway]) -> RunningGateway:
    """A gateway with the default settings."""
    return start_gateway()


def bearer(endpoint: Any, which: str = "primary") -> dict[str, str]:
    endpoint.refresh_from_db()
    return {"Authorization": f"Bearer {getattr(endpoint, f'{which}_key')}"}


@dataclass
class Shot:
    """One request a test client sent, and what came back."""

    sent: float  # time.monotonic() when it was sent
    status: int
    deployment: str
    body: str
    done: float = 0.0  # time.monotonic() when the answer was in


def fire(url: str, headers: dict[str, str], count: int, payload: Any = None) -> list[Shot]:
    """`count` requests one after the other on one keep-alive connection."""
    shots = []
    with httpx.Client(timeout=30) as client:
        for _ in range(count):
            sent = time.monotonic()
            response = client.post(url, json=payload if payload is not None else {"x": 1}, headers=headers)
            shots.append(Shot(sent, response.status_code, response.headers.get("azureml-model-deployment", ""),
                              response.text, time.monotonic()))  # fmt: skip
    return shots


class Load:
    """Clients sending requests back to back from threads until stopped; every answer is kept."""

    def __init__(self, url: str, headers: dict[str, str], clients: int = 4, payload: Any = None) -> None:
        self.url, self.headers, self.payload = url, headers, payload if payload is not None else {"x": 1}
        self.shots: list[Shot] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _client(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.post(self.url, json=self.payload, headers=self.headers)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                shot = Shot(sent, response.status_code, response.headers.get("azureml-model-deployment", ""),
                            response.text, time.monotonic())  # fmt: skip
                with self._lock:
                    self.shots.append(shot)

    def wait_for_answers(self, count: int, timeout: float = 30) -> None:
        """Block until at least `count` answers are in (a loaded machine starts threads slowly)."""
        deadline = time.monotonic() + timeout
        while len(self.shots) < count:
            assert time.monotonic() < deadline, f"only {len(self.shots)} answers in {timeout}s: {self.errors[:3]}"
            time.sleep(0.02)

    def failures(self) -> list[str]:
        """Everything that was not a 200, as readable lines."""
        bad = [f"{shot.status} {shot.body[:200]}" for shot in self.shots if shot.status != 200]
        return self.errors + bad

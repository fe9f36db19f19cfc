"""Runtime fixtures: start `python -m runtime` as a real process on 127.0.0.1 and talk HTTP to it.

No Django here: the runtime is tested the way the local backend runs it (the repository made importable,
like the .pth file the backend writes into each environment).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60


@dataclass
class Answer:
    """What a client gets back."""

    status: int
    headers: dict[str, str]
    body: bytes
    header_list: list[tuple[str, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    """A running `python -m runtime` process."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    app_dir: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Answer:
        """One request on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            pairs = response.getheaders()
            return Answer(response.status, {k.lower(): v for k, v in pairs}, data, pairs)
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.request("GET", path, **kwargs)

    def post_json(self, path: str, payload: Any, headers: dict[str, str] | None = None) -> Answer:
        return self.request("POST", path, json.dumps(payload), {"Content-Type": "application/json", **(headers or {})})

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 10) -> str:
        """The log once it contains `needle` (log lines are written just after the answer)."""
        deadline = time.monotonic() + timeout
        while needle not in self.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.log()

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not go; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def runtime_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a runtime process: the repository importable, nothing Django."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "AML_APP_ROOT")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@pytest.fixture
def start_runtime(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Write a score.py (and other files) into an app folder, start the runtime on it, wait until it answers."""
    started: list[Server] = []

    def start(
        script: str | None,
        *,
        files: dict[str, str | bytes] | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        wait: bool = True,
    ) -> Server:
        app_dir = tmp_path / f"app{len(started)}"
        model_dir = app_dir / "model"
        model_dir.mkdir(parents=True)
        (model_dir / "weights.txt").write_text("0.5\n")
        for name, content in (files or {}).items():
            target = app_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(textwrap.dedent(content))
        command = [sys.executable, "-m", "runtime", "--model_dir", str(model_dir), "--host", "127.0.0.1"]
        if script is not None:
            (app_dir / "score.py").write_text(textwrap.dedent(script))
            command += ["--entry_script", "score.py"]
        port = free_port()
        command += ["--port", str(port), *(args or [])]
        log_path = app_dir / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(command, cwd=app_dir, env=runtime_env(env), stdout=log, stderr=subprocess.STDOUT)
        server = Server(proc, port, log_path, app_dir)
        started.append(server)
        if wait:
            _wait_until_listening(server)
        return server

    yield start
    for server in started:
        server.stop()


def _wait_until_listening(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return  # it exited: the test looks at the exit code and the log
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the runtime did not start within {START_TIMEOUT_S}s:\n{server.log()}")

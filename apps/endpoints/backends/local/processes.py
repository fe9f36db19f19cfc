"""The local backend's hands: start, stop, probe and read instance processes (`python -m runtime`).

Processes start in their own session so they outlive a Celery worker or a `studio up` restart; a
process is recognised by its pid and create time, so a reused pid is never taken for an instance.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from apps.endpoints.backends.base import DeploymentSpec, InstanceUsage
from apps.endpoints.backends.local.state import InstanceState
from apps.endpoints.initializer import Layout

STOP_GRACE_S = 5.0
# Instances this worker process started: polled so they do not linger as zombies, exit codes kept for events.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_EXIT_CODES: dict[int, int] = {}


@dataclass(frozen=True)
class Started:
    """A process just started for an instance."""

    pid: int
    port: int
    create_time: float | None
    at: datetime


def _reap() -> None:
    for pid, child in list(_CHILDREN.items()):
        code = child.poll()
        if code is not None:
            _CHILDREN.pop(pid, None)
            _EXIT_CODES[pid] = code


def alive(state: InstanceState) -> bool:
    """Is the recorded process still ours and running (a reused pid has another create time)?"""
    if not state.pid:
        return False
    _reap()
    if state.pid in _EXIT_CODES:
        return False
    try:
        process = psutil.Process(state.pid)
        if state.create_time is not None and abs(process.create_time() - state.create_time) > 0.05:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def exit_code(state: InstanceState) -> int | None:
    """How the instance's process ended, when this worker started it (and forgets it once told)."""
    _reap()
    return _EXIT_CODES.pop(state.pid or 0, None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kill_strays(folder: Path) -> None:
    """Kill runtime processes working in `folder` that no state file names (a worker killed mid-start)."""
    prefix = str(folder)
    for process in psutil.process_iter(["cwd", "cmdline"]):
        try:
            command = process.info["cmdline"] or []
            if "runtime" in command and (process.info["cwd"] or "").startswith(prefix):
                os.killpg(process.pid, signal.SIGKILL)
        except (psutil.Error, OSError):
            pass


def start(
    spec: DeploymentSpec, folder: Path, layout: Layout, python: Path, log_path: Path, previous_log: Path
) -> Started:
    """Start the runtime for one instance on a free port; the last run's log is kept as the previous log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if log_path.exists() and log_path.stat().st_size:
        log_path.replace(previous_log)
    port = free_port()
    env = {
        "PATH": f"{python.parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONUNBUFFERED": "1",
        "VIRTUAL_ENV": str(python.parent.parent),
    }
    env.update(spec.environment_variables)
    env.update(
        {
            "AML_APP_ROOT": str(layout.app_root),
            "AZUREML_MODEL_DIR": str(layout.model_dir or ""),
            "SCORING_TIMEOUT_MS": str(spec.request.request_timeout_ms),
            "SERVICE_NAME": spec.endpoint_name,
            "AZUREML_DEPLOYMENT_NAME": spec.name,
        }
    )
    command = [str(python), "-m", "runtime", "--host", "127.0.0.1", "--port", str(port)]
    if layout.entry_script:
        env["AZUREML_ENTRY_SCRIPT"] = layout.entry_script
        command += ["--entry_script", str(layout.app_root / layout.entry_script)]
    elif spec.model_path_name:
        env["MLFLOW_MODEL_FOLDER"] = spec.model_path_name
    if layout.model_dir is not None:
        command += ["--model_dir", str(layout.model_dir)]
    kill_strays(folder)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=layout.app_root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the worker; stopped as a process group
        )
    _CHILDREN[process.pid] = process
    _EXIT_CODES.pop(process.pid, None)
    try:
        create_time: float | None = psutil.Process(process.pid).create_time()
    except psutil.Error:
        create_time = None
    return Started(pid=process.pid, port=port, create_time=create_time, at=datetime.now(UTC))


def stop(state: InstanceState) -> None:
    """SIGTERM the instance's process group (the runtime finishes requests in flight), SIGKILL after a grace."""
    if not alive(state):
        exit_code(state)
        return
    pid = state.pid or 0
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and alive(state):
        time.sleep(0.05)
    if alive(state):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        try:
            child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
    _EXIT_CODES.pop(pid, None)


def probe(port: int, timeout: float) -> bool:
    """Does the instance answer `GET /` with 200 within `timeout` seconds?"""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            connection.request("GET", "/")
            return connection.getresponse().status == 200
        finally:
            connection.close()
    except (OSError, http.client.HTTPException):
        return False


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a log file (only its last 256 KiB are read)."""
    if not path.exists():
        return []
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 256 * 1024))
        text = handle.read().decode(errors="replace")
    return text.splitlines()[-lines:]


def folder_bytes(folder: Path) -> int:
    """Bytes the files under a folder take (symlinks not followed); 0 for a folder that is gone."""
    total = 0
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


def usage(state: InstanceState) -> InstanceUsage | None:
    """CPU time and memory of the instance's process tree (the runtime and its workers); None when not running."""
    if not alive(state):
        return None
    try:
        root = psutil.Process(state.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    cpu = 0.0
    memory = 0
    for member in tree:
        try:
            times = member.cpu_times()
            cpu += times.user + times.system
            memory += member.memory_info().rss
        except psutil.Error:
            continue
    return InstanceUsage(memory_bytes=memory, cpu_seconds=cpu, pid=state.pid)

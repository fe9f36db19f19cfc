"""The local backend: each instance is a `python -m runtime` process on 127.0.0.1, in a cached environment.

Every instance has a folder under STUDIO_INSTANCES_DIR/<deployment uid>/<instance>/ with its files
(laid out by the storage initializer), its logs and a `state.json` (pid, port, process create time,
generation, restarts). Processes start in their own session so they outlive a Celery worker or
`studio up` restart; the state files let the next worker re-adopt them (the create time, checked with
psutil, guards against a reused pid) instead of starting duplicates.

The worker is the supervisor (there is no kubelet): each `apply` probes the instances, restarts
crashed ones with exponential back-off (CrashLoopBackOff when they keep failing), starts missing
ones, and stops surplus or outdated ones only after their replacements are ready, taking them out of
routing first so no request fails.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import psutil
from django.conf import settings

from apps.core.errors import NotFound
from apps.endpoints import environments, initializer
from apps.endpoints.backends.base import BackendEvent, Container, DeploymentSpec, InstanceStatus, Observed

logger = logging.getLogger(__name__)

POLL_S = 0.2
STOP_GRACE_S = 5.0
# An instance that has run this long without crashing starts its back-off from scratch (as the kubelet does).
STABLE_AFTER_S = 60.0
MAX_BACKOFF_S = 60.0
LOG_TAIL_LINES = 30
# A traceback's exception line: unindented `RuntimeError: ...` or `entry_module.ModelMissing: ...`.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(: |$)")
# Instances this worker process started: polled so they do not linger as zombies, exit codes kept for events.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_EXIT_CODES: dict[int, int] = {}


def _reap() -> None:
    for pid, child in list(_CHILDREN.items()):
        code = child.poll()
        if code is not None:
            _CHILDREN.pop(pid, None)
            _EXIT_CODES[pid] = code


def _kill_strays(folder: Path) -> None:
    """Kill runtime processes working in `folder` that no state file names (a worker killed mid-start)."""
    prefix = str(folder)
    for process in psutil.process_iter(["cwd", "cmdline"]):
        try:
            command = process.info["cmdline"] or []
            if "runtime" in command and (process.info["cwd"] or "").startswith(prefix):
                os.killpg(process.pid, signal.SIGKILL)
        except (psutil.Error, OSError):
            pass


class Reporter(Protocol):
    """Receives what the backend does while it works (the reconcile task writes it to the database)."""

    def event(self, event: BackendEvent, duration_ms: int | None = None) -> None: ...

    def observed(self, observed: Observed) -> None: ...


@dataclass
class InstanceState:
    """One instance as remembered in its state.json."""

    name: str
    index: int
    template: str
    generation: int
    port: int = 0
    pid: int | None = None
    create_time: float | None = None
    started_at: str = ""
    phase: str = "Pending"
    ready: bool = False
    ever_ready: bool = False
    restarts: int = 0
    crashes: int = 0
    next_start: float = 0.0
    ready_ok: int = 0
    ready_fail: int = 0
    live_fail: int = 0
    last_probe: float = 0.0
    reason: str = ""
    message: str = ""


def _template(spec: DeploymentSpec) -> str:
    """What an instance's process is made of; a change means new instances (rolling), a count change does not."""
    parts = {
        "env": spec.environment.spec_hash,
        "model": [spec.model_asset, spec.model_root, spec.model_path_name, spec.model_type],
        "code": [spec.code_root, spec.scoring_script],
        "vars": dict(sorted(spec.environment_variables.items())),
        "timeout": spec.request.request_timeout_ms,
        "size": spec.instance_type.name,
        "probes": [asdict(spec.liveness_probe), asdict(spec.readiness_probe)],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int) -> list[str]:
    if not path.exists():
        return []
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 256 * 1024))
        text = handle.read().decode(errors="replace")
    return text.splitlines()[-lines:]


class LocalBackend:
    """Runs deployments as local processes of the runtime; see the module docstring."""

    def __init__(
        self, *, reporter: Reporter | None = None, root: Path | None = None, wait_s: float | None = None
    ) -> None:
        self.reporter = reporter
        self._root = root
        # How long one apply may wait for starting instances (None: until ready or failed). The periodic pass
        # caps it, so one slow start-up does not hold up the supervision of every other deployment.
        self.wait_s = wait_s
        self._events: list[BackendEvent] = []

    # --- files ---

    @property
    def root(self) -> Path:
        return Path(self._root or settings.STUDIO_INSTANCES_DIR)

    def deployment_dir(self, spec: DeploymentSpec) -> Path:
        return self.root / spec.uid

    def _instance_dir(self, spec: DeploymentSpec, name: str) -> Path:
        return self.deployment_dir(spec) / name

    def _log(self, spec: DeploymentSpec, name: str, container: str, previous: bool = False) -> Path:
        suffix = ".previous.log" if previous else ".log"
        return self._instance_dir(spec, name) / "logs" / f"{container}{suffix}"

    def _load(self, spec: DeploymentSpec) -> dict[str, InstanceState]:
        states: dict[str, InstanceState] = {}
        for path in sorted(self.deployment_dir(spec).glob("*/state.json")):
            try:
                state = InstanceState(**json.loads(path.read_text()))
            except (ValueError, TypeError):
                logger.warning("ignoring an unreadable instance state file %s", path)
                continue
            states[state.name] = state
        return states

    def _save(self, spec: DeploymentSpec, state: InstanceState) -> None:
        folder = self._instance_dir(spec, state.name)
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / "state.json.tmp"
        temporary.write_text(json.dumps(asdict(state)))
        temporary.replace(folder / "state.json")

    @contextmanager
    def _locked(self, spec: DeploymentSpec) -> Iterator[None]:
        """Only one process acts on a deployment's instances at a time (a second worker, `studio up`)."""
        folder = self.deployment_dir(spec)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    # --- reporting ---

    def _emit(
        self,
        reason: str,
        message: str,
        *,
        warning: bool = False,
        instance: str = "",
        container: str = "",
        duration_ms: int | None = None,
    ) -> None:
        event = BackendEvent(
            reason=reason,
            message=message,
            type="Warning" if warning else "Normal",
            instance=instance,
            container=container,
            at=datetime.now(UTC),
        )
        self._events.append(event)
        if self.reporter is not None:
            self.reporter.event(event, duration_ms)

    # --- processes ---

    def _alive(self, state: InstanceState) -> bool:
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

    def _exit_code(self, state: InstanceState) -> int | None:
        _reap()
        return _EXIT_CODES.pop(state.pid or 0, None)

    def _start(self, spec: DeploymentSpec, state: InstanceState, python: Path, layout: initializer.Layout) -> None:
        log_path = self._log(spec, state.name, "inference-server")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if log_path.exists() and log_path.stat().st_size:
            log_path.replace(self._log(spec, state.name, "inference-server", previous=True))
        state.port = _free_port()
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
        command = [str(python), "-m", "runtime", "--host", "127.0.0.1", "--port", str(state.port)]
        if layout.entry_script:
            env["AZUREML_ENTRY_SCRIPT"] = layout.entry_script
            command += ["--entry_script", str(layout.app_root / layout.entry_script)]
        elif spec.model_path_name:
            env["MLFLOW_MODEL_FOLDER"] = spec.model_path_name
        if layout.model_dir is not None:
            command += ["--model_dir", str(layout.model_dir)]
        _kill_strays(self._instance_dir(spec, state.name))
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
        state.pid = process.pid
        try:
            state.create_time = psutil.Process(process.pid).create_time()
        except psutil.Error:
            state.create_time = None
        state.started_at = datetime.now(UTC).isoformat()
        state.phase = "Starting"
        state.ready = False
        state.ready_ok = state.ready_fail = state.live_fail = 0
        state.last_probe = 0.0
        state.reason = ""
        state.message = ""
        self._save(spec, state)

    def _stop(self, state: InstanceState) -> None:
        """SIGTERM the instance's process group (the runtime finishes requests in flight), SIGKILL after a grace."""
        if not self._alive(state):
            self._exit_code(state)
            return
        pid = state.pid or 0
        try:
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            return
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and self._alive(state):
            time.sleep(0.05)
        if self._alive(state):
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

    def _probe(self, port: int, timeout: float) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                connection.request("GET", "/")
                return connection.getresponse().status == 200
            finally:
                connection.close()
        except (OSError, http.client.HTTPException):
            return False

    # --- supervision ---

    def _init_failure(self, spec: DeploymentSpec, state: InstanceState) -> tuple[str, str] | None:
        """Azure's reason and message when the runtime logged that the user's script failed to load or init."""
        lines = _tail(self._log(spec, state.name, "inference-server"), 400)
        if not any("User's init function failed" in line for line in lines):
            return None
        start = max(i for i, line in enumerate(lines) if "User's init function failed" in line)
        failure = lines[start:]
        # The user's own exception comes first in the chained traceback; the runtime's ScriptError wraps it.
        named = [line.rstrip() for line in failure if _EXCEPTION_LINE.match(line)]
        users = [line for line in named if not line.startswith("runtime.")]
        exception = (users or named or [""])[0]
        exception = exception.removeprefix("entry_module.").removeprefix("runtime.scoring.ScriptError: ")
        is_import = any(
            marker in line
            for line in failure
            for marker in ("ModuleNotFoundError", "ImportError", "SyntaxError", "IndentationError")
        ) and not any("in init" in line for line in failure)
        reason = "UserScriptImportError" if is_import else "UserScriptInitFailed"
        if is_import:
            what = "importing the scoring script failed"
        elif users:
            what = "the scoring script's init() raised"
        else:
            what = "the scoring script could not be loaded"
        tail = "\n".join(failure[-LOG_TAIL_LINES:])
        return reason, f"{what}: {exception or 'see the log'}\n--- last log lines ---\n{tail}"

    def _backoff(self, crashes: int) -> float:
        base = settings.STUDIO_RESTART_BACKOFF_MS / 1000
        return min(MAX_BACKOFF_S, base * 2 ** max(0, crashes - 1))

    def _tick(self, spec: DeploymentSpec, state: InstanceState, python: Path | None, now: float) -> None:
        """Check one instance: liveness of its process, probes, restarts."""
        if state.phase in ("Failed", "Terminating"):
            return
        if not self._alive(state):
            if state.phase == "CrashLoopBackOff" or (state.pid is None and state.next_start):
                if now >= state.next_start and python is not None:
                    self._restart(spec, state, python)
                return
            code = self._exit_code(state)
            failure = self._init_failure(spec, state) if not state.ever_ready else None
            if failure is not None:
                state.phase, state.ready, state.pid = "Failed", False, None
                state.reason, state.message = failure
                self._emit(failure[0], failure[1], warning=True, instance=state.name, container="inference-server")
                self._save(spec, state)
                return
            state.crashes += 1
            state.ready = False
            state.pid = None
            delay = self._backoff(state.crashes)
            state.next_start = now + delay
            exit_text = f"exited with code {code}" if code is not None else "is no longer running"
            if state.crashes >= settings.STUDIO_CRASHLOOP_RESTARTS:
                state.phase = "CrashLoopBackOff"
                state.reason = "CrashLoopBackOff"
                last = "\n".join(_tail(self._log(spec, state.name, "inference-server"), 10))
                state.message = f"crashed {state.crashes} times in a row; last log lines:\n{last}"
                self._emit(
                    "CrashLoopBackOff",
                    f"instance {state.name} {exit_text}; crashed {state.crashes} times in a row, "
                    f"back-off {delay:.1f} s before restarting",
                    warning=True,
                    instance=state.name,
                    container="inference-server",
                )
            else:
                state.phase = "Unready"
                self._emit(
                    "InstanceCrashed",
                    f"instance {state.name} {exit_text}; restarting in {delay:.1f} s",
                    warning=True,
                    instance=state.name,
                    container="inference-server",
                )
            self._save(spec, state)
            if now >= state.next_start and python is not None:
                self._restart(spec, state, python)
            return
        started = datetime.fromisoformat(state.started_at).timestamp() if state.started_at else time.time()
        running_for = time.time() - started
        if not state.ready:
            readiness = spec.readiness_probe
            # Until the first success the probe is polled fast: the runtime only listens once init() is done,
            # so an early answer cannot be a false positive, and Succeeded comes within a poll of being true.
            period = POLL_S if not state.ever_ready or state.phase == "Starting" else readiness.period
            if now - state.last_probe < period:
                return
            state.last_probe = now
            if self._probe(state.port, readiness.timeout):
                state.ready_ok += 1
                state.ready_fail = 0
                if state.ready_ok >= readiness.success_threshold:
                    state.ready, state.phase, state.ever_ready = True, "Ready", True
                    self._emit(
                        "InstanceReady",
                        f"instance {state.name} is ready on port {state.port} (generation {state.generation})",
                        instance=state.name,
                        container="inference-server",
                        duration_ms=int(running_for * 1000),
                    )
                    self._save(spec, state)
                return
            deadline = readiness.initial_delay + readiness.period * readiness.failure_threshold
            if running_for > deadline:
                self._stop(state)
                state.pid, state.ready = None, False
                if not state.ever_ready:
                    state.phase, state.reason = "Failed", "ReadinessProbeFailed"
                    state.message = (
                        f"instance {state.name} did not answer GET / on port {state.port} within {deadline} s "
                        f"(readiness_probe initial_delay + period × failure_threshold)"
                    )
                    self._emit(state.reason, state.message, warning=True, instance=state.name)
                else:
                    state.crashes += 1
                    state.next_start = now + self._backoff(state.crashes)
                    state.phase = "Unready"
                self._save(spec, state)
            return
        if running_for > STABLE_AFTER_S and state.crashes:
            state.crashes = 0
            self._save(spec, state)
        liveness, readiness = spec.liveness_probe, spec.readiness_probe
        if now - state.last_probe < min(liveness.period, readiness.period):
            return
        state.last_probe = now
        if self._probe(state.port, max(liveness.timeout, readiness.timeout)):
            state.live_fail = state.ready_fail = 0
            return
        state.live_fail += 1
        state.ready_fail += 1
        if state.ready_fail >= readiness.failure_threshold and state.ready:
            state.ready, state.phase = False, "Unready"
            self._emit("ReadinessProbeFailed", f"instance {state.name} stopped answering GET /", warning=True)
        if running_for > liveness.initial_delay and state.live_fail >= liveness.failure_threshold:
            self._emit(
                "LivenessProbeFailed",
                f"instance {state.name} failed {state.live_fail} liveness probes; restarting it",
                warning=True,
                instance=state.name,
            )
            self._stop(state)
            state.crashes += 1
            state.pid, state.ready, state.phase = None, False, "Unready"
            state.next_start = now + self._backoff(state.crashes)
        self._save(spec, state)

    def _restart(self, spec: DeploymentSpec, state: InstanceState, python: Path) -> None:
        layout = self._layout(spec, state)
        state.restarts += 1
        self._start(spec, state, python, layout)
        self._emit(
            "InstanceRestarted",
            f"instance {state.name} restarted (restart {state.restarts}) on port {state.port}",
            instance=state.name,
            container="inference-server",
        )

    def _layout(self, spec: DeploymentSpec, state: InstanceState) -> initializer.Layout:
        app_root = self._instance_dir(spec, state.name) / "var" / "azureml-app"
        model_dir = None
        if spec.model_asset:
            name, version = initializer._model_name_version(spec)
            model_dir = app_root / "azureml-models" / name / version
        return initializer.Layout(
            app_root=app_root / "code" if spec.code_root else app_root,
            model_dir=model_dir,
            entry_script=spec.scoring_script if spec.code_root else None,
        )

    def _observed(
        self, spec: DeploymentSpec, states: dict[str, InstanceState], failed: tuple[str, str] | None = None
    ) -> Observed:
        instances = tuple(
            InstanceStatus(
                name=state.name,
                state=state.phase,
                ready=state.ready,
                address=f"http://127.0.0.1:{state.port}" if state.port else "",
                generation=state.generation,
                restarts=state.restarts,
                pid=state.pid,
                port=state.port or None,
                started_at=datetime.fromisoformat(state.started_at) if state.started_at else None,
                message=state.message,
            )
            for state in sorted(states.values(), key=lambda item: (item.template, item.index))
        )
        if failed is None:
            wanted = [s for s in states.values() if s.template == _template(spec) and s.index < spec.instance_count]
            terminal = [s for s in wanted if s.phase == "Failed" and s.reason]
            if terminal:
                failed = (terminal[0].reason, terminal[0].message)
            elif wanted and all(s.phase == "CrashLoopBackOff" for s in wanted):
                failed = ("CrashLoopBackOff", wanted[0].message)
        reason, message = failed or ("", "")
        return Observed(instances=instances, failed_reason=reason, failed_message=message, events=tuple(self._events))

    # --- the Backend protocol ---

    def apply(self, spec: DeploymentSpec) -> Observed:
        """Build the environment, start missing instances, supervise them, then retire surplus or outdated ones."""
        self._events = []
        with self._locked(spec):
            states = self._load(spec)
            started = time.monotonic()
            template = _template(spec)
            wanted = [f"{spec.name}-{template}-{index}" for index in range(spec.instance_count)]
            starting = any(name not in states for name in wanted)
            cached = (environments.env_path(spec.environment) / environments.READY_MARKER).exists()
            if not cached:
                self._emit("BuildingEnvironment", f"building environment {spec.environment.name} (first use)")
            try:
                built = environments.ensure_environment(spec.environment)
            except environments.BuildFailed as exc:
                self._emit("ImageBuildFailure", str(exc), warning=True, container="environment")
                return self._observed(spec, states, ("ImageBuildFailure", str(exc)))
            for note in built.notes:
                self._emit("EnvironmentNote", note, warning=True, container="environment")
            if starting or not built.cached:
                self._emit(
                    "EnvironmentReady",
                    f"environment {spec.environment.name}:{spec.environment.version} "
                    + ("cached" if built.cached else f"built (log: {built.build_log})"),
                    duration_ms=int((time.monotonic() - started) * 1000),
                )
            for index, name in enumerate(wanted):
                state = states.get(name)
                if state is not None and not (state.phase == "Failed" and state.generation < spec.generation):
                    if state.generation != spec.generation:
                        state.generation = spec.generation
                        self._save(spec, state)
                    continue
                state = InstanceState(name=name, index=index, template=template, generation=spec.generation)
                states[name] = state
                step = time.monotonic()
                try:
                    layout = initializer.initialize(
                        spec, self._instance_dir(spec, name), self._log(spec, name, "storage-initializer")
                    )
                except initializer.InitializerFailed as exc:
                    state.phase, state.reason, state.message = "Failed", exc.reason, exc.message
                    self._save(spec, state)
                    self._emit(exc.reason, exc.message, warning=True, instance=name, container="storage-initializer")
                    return self._observed(spec, states)
                self._emit(
                    "StorageInitialized",
                    f"model and code laid out for instance {name}",
                    instance=name,
                    container="storage-initializer",
                    duration_ms=int((time.monotonic() - step) * 1000),
                )
                self._start(spec, state, built.python, layout)
                self._emit(
                    "InstanceStarted",
                    f"instance {name} started (pid {state.pid}, port {state.port})",
                    instance=name,
                    container="inference-server",
                )
            self._supervise(spec, states, wanted, built.python)
            observed = self._observed(spec, states)
            if observed.failed_reason or not all(states[name].ready for name in wanted):
                return observed
            surplus = [state for name, state in states.items() if name not in wanted]
            if surplus:
                self._retire(spec, states, surplus)
            return self._observed(spec, states)

    def _supervise(
        self, spec: DeploymentSpec, states: dict[str, InstanceState], wanted: list[str], python: Path
    ) -> None:
        """Tick every instance; wait while wanted ones are starting (not while they sit in back-off)."""
        started = time.monotonic()
        while True:
            now = time.time()
            for state in list(states.values()):
                self._tick(spec, state, python, now)
            pending = [states[name] for name in wanted if not states[name].ready]
            if not pending or any(s.phase == "Failed" for s in pending):
                return
            if any(s.phase == "CrashLoopBackOff" for s in pending):
                return
            # A first crash restarts within seconds: wait for it here rather than leave it to the next pass.
            if all(not self._alive(s) and s.next_start - now > 3 for s in pending):
                return
            if self.wait_s is not None and time.monotonic() - started > self.wait_s:
                return
            time.sleep(POLL_S)

    def _retire(self, spec: DeploymentSpec, states: dict[str, InstanceState], surplus: list[InstanceState]) -> None:
        """Take surplus instances out of routing, let gateways reload and requests finish, then stop them."""
        for state in surplus:
            state.ready, state.phase = False, "Terminating"
            self._save(spec, state)
        if self.reporter is not None:
            self.reporter.observed(self._observed(spec, states))
        time.sleep(settings.STUDIO_DRAIN_MS / 1000)
        for state in surplus:
            self._stop(state)
            shutil.rmtree(self._instance_dir(spec, state.name), ignore_errors=True)
            states.pop(state.name, None)
            self._emit("InstanceStopped", f"instance {state.name} stopped", instance=state.name)

    def observe(self, spec: DeploymentSpec) -> Observed:
        """The instances as their state files and processes say, without starting or stopping anything."""
        self._events = []
        states = self._load(spec)
        for state in states.values():
            if state.pid and not self._alive(state):
                state.ready, state.phase = False, "Unready" if state.phase != "Failed" else "Failed"
        return self._observed(spec, states)

    def delete(self, spec: DeploymentSpec) -> None:
        """Stop every instance of the deployment and remove its folders (ports are freed with the processes)."""
        folder = self.deployment_dir(spec)
        if not folder.exists():
            return
        with self._locked(spec):
            for state in self._load(spec).values():
                self._stop(state)
        shutil.rmtree(folder, ignore_errors=True)

    def logs(
        self,
        spec: DeploymentSpec,
        *,
        container: Container,
        lines: int,
        instance: str | None = None,
        previous: bool = False,
    ) -> str:
        """The last `lines` lines of one container's log file, per instance (the previous run's with `previous`)."""
        names = sorted(self._load(spec))
        if instance is not None:
            if instance not in names:
                raise NotFound(f"instance {instance!r} is not an instance of deployment {spec.name!r}")
            names = [instance]
        chunks = []
        for name in names:
            text = "\n".join(_tail(self._log(spec, name, container, previous), lines))
            chunks.append(f"=== {name} ===\n{text}" if len(names) > 1 else text)
        return "\n".join(chunks)

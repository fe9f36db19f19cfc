"""The local backend: carries out what `supervisor.step` decides, with real processes, files and probes.

Every instance has a folder under <root>/<deployment uid>/<instance>/ with its files (laid out by
the storage initializer), its logs and a `state.json`. Each pass takes the deployment's file lock,
builds the environment (cached), then loops: look at every instance (process alive, exit code, due
probes, log tail), ask `supervisor.step` what to do, do it, and look again while something is on its
way (a new spec waits until it is reached or fails; the periodic pass at most `supervise_wait_s`).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from apps.core.errors import NotFound
from apps.endpoints import environments, initializer
from apps.endpoints.backends.base import (
    BackendEvent,
    Container,
    DeploymentSpec,
    InstanceStatus,
    InstanceUsage,
    Observed,
    Reporter,
)
from apps.endpoints.backends.local import processes, state
from apps.endpoints.backends.local.state import InstanceState
from apps.endpoints.backends.local.supervisor import (
    Create,
    Emit,
    Plan,
    Policy,
    Restart,
    Retire,
    Seen,
    Stop,
    failure_of,
    just_died,
    new_instance,
    probe_due,
    started,
    step,
    wanted_names,
)

logger = logging.getLogger(__name__)

POLL_S = 0.2
# The periodic pass waits at most this long for instances that are (re)starting: one slow start-up
# must not hold up a worker that other deployments' supervision is queued behind.
SUPERVISE_WAIT_S = 5.0
INIT_LOG_LINES = 400


def policy_from_settings() -> Policy:
    """The supervision timings the studio's settings choose."""
    return Policy(
        restart_backoff_s=settings.STUDIO_RESTART_BACKOFF_MS / 1000,
        crashloop_restarts=settings.STUDIO_CRASHLOOP_RESTARTS,
    )


class LocalBackend:
    """Runs deployments as local processes of the runtime; see the module docstring."""

    def __init__(
        self,
        *,
        reporter: Reporter | None = None,
        root: Path | None = None,
        policy: Policy | None = None,
        supervise_wait_s: float = SUPERVISE_WAIT_S,
        drain_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reporter = reporter
        self._root = root
        self._policy = policy
        self.supervise_wait_s = supervise_wait_s
        self._drain_s = drain_s
        self._clock = clock
        self._unreported: list[BackendEvent] = []

    # --- files ---

    @property
    def root(self) -> Path:
        return Path(self._root or settings.STUDIO_INSTANCES_DIR)

    @property
    def policy(self) -> Policy:
        return self._policy or policy_from_settings()

    @property
    def drain_s(self) -> float:
        return self._drain_s if self._drain_s is not None else settings.STUDIO_DRAIN_MS / 1000

    def deployment_dir(self, spec: DeploymentSpec) -> Path:
        return self.root / spec.uid

    def _instance_dir(self, spec: DeploymentSpec, name: str) -> Path:
        return self.deployment_dir(spec) / name

    def _log(self, spec: DeploymentSpec, name: str, container: str, previous: bool = False) -> Path:
        suffix = ".previous.log" if previous else ".log"
        return self._instance_dir(spec, name) / "logs" / f"{container}{suffix}"

    # --- the Backend protocol ---

    def apply(self, spec: DeploymentSpec) -> Observed:
        """Build the environment, start missing instances, supervise them, retire surplus or outdated ones."""
        return self._run(spec, wait_s=None)

    def supervise(self, spec: DeploymentSpec) -> Observed:
        """The periodic pass: restarts, probes and readiness, waiting at most `supervise_wait_s` for start-ups."""
        return self._run(spec, wait_s=self.supervise_wait_s)

    def observe(self, spec: DeploymentSpec) -> Observed:
        """The instances as their state files and processes say, without starting or stopping anything."""
        self._unreported = []
        records = state.load(self.deployment_dir(spec))
        for name, record in records.items():
            if record.pid and not processes.alive(record):
                records[name] = replace(record, ready=False, phase="Unready" if record.phase != "Failed" else "Failed")
        return self._observed(spec, records, failure_of(spec, records))

    def delete(self, spec: DeploymentSpec) -> None:
        """Stop every instance of the deployment and remove its folders (ports are freed with the processes)."""
        folder = self.deployment_dir(spec)
        if not folder.exists():
            return
        with state.locked(folder):
            for record in state.load(folder).values():
                processes.stop(record)
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
        """The last `lines` lines of one container's log file, per instance (the previous run's with `previous`).

        Before any instance exists, an environment build that failed (or is running) explains why: its log.
        """
        names = sorted(state.load(self.deployment_dir(spec)))
        if instance is not None:
            if instance not in names:
                raise NotFound(f"instance {instance!r} is not an instance of deployment {spec.name!r}")
            names = [instance]
        if not names:
            build_log = environments.build_log_path(spec.environment)
            ready = (environments.env_path(spec.environment) / environments.READY_MARKER).exists()
            return "\n".join(processes.tail(build_log, lines)) if not ready else ""
        chunks = []
        for name in names:
            text = "\n".join(processes.tail(self._log(spec, name, container, previous), lines))
            chunks.append(f"=== {name} ===\n{text}" if len(names) > 1 else text)
        return "\n".join(chunks)

    def usage(self, spec: DeploymentSpec) -> dict[str, InstanceUsage]:
        """CPU time and memory of each running instance's process tree, and its folder's size, by instance name."""
        found = {}
        for name, record in state.load(self.deployment_dir(spec)).items():
            reading = processes.usage(record)
            if reading is not None:
                found[name] = replace(reading, disk_bytes=processes.folder_bytes(self._instance_dir(spec, name)))
        return found

    # --- the loop ---

    def _run(self, spec: DeploymentSpec, *, wait_s: float | None) -> Observed:
        self._unreported = []
        folder = self.deployment_dir(spec)
        with state.locked(folder):
            records = state.load(folder)
            python = self._environment(spec, starting=any(name not in records for name in wanted_names(spec)))
            if isinstance(python, Observed):
                return self._observed(spec, records, (python.failed_reason, python.failed_message))
            policy = self.policy
            deadline = None if wait_s is None else time.monotonic() + wait_s
            while True:
                now = self._clock()
                plan = step(spec, records, self._look(spec, records, now, policy), now, policy)
                records = self._carry_out(spec, records, plan, python)
                if not plan.wait or (deadline is not None and time.monotonic() > deadline):
                    return self._observed(spec, records, failure_of(spec, records))
                time.sleep(POLL_S)

    def _environment(self, spec: DeploymentSpec, *, starting: bool) -> Path | Observed:
        """The environment's Python, built first when needed; a failed build as the Observed to report."""
        started = time.monotonic()
        cached = (environments.env_path(spec.environment) / environments.READY_MARKER).exists()
        if not cached:
            self._emit(Emit("BuildingEnvironment", f"building environment {spec.environment.name} (first use)"))
        try:
            built = environments.ensure_environment(spec.environment)
        except environments.BuildFailed as exc:
            self._emit(Emit("ImageBuildFailure", str(exc), warning=True, container="environment"))
            return Observed(failed_reason="ImageBuildFailure", failed_message=str(exc))
        for note in built.notes:
            self._emit(Emit("EnvironmentNote", note, warning=True, container="environment"))
        if starting or not built.cached:
            self._emit(
                Emit(
                    "EnvironmentReady",
                    f"environment {spec.environment.name}:{spec.environment.version} "
                    + ("cached" if built.cached else f"built (log: {built.build_log})"),
                    duration_ms=int((time.monotonic() - started) * 1000),
                )
            )
        return built.python

    def _look(
        self, spec: DeploymentSpec, records: Mapping[str, InstanceState], now: float, policy: Policy
    ) -> dict[str, Seen]:
        """What one tick sees of every instance: its process, a probe when one is due, a fresh crash's log."""
        seen = {}
        for name, record in records.items():
            is_alive = processes.alive(record)
            if not is_alive:
                died = just_died(record, is_alive)
                seen[name] = Seen(
                    alive=False,
                    exit_code=processes.exit_code(record) if died else None,
                    log_tail=tuple(processes.tail(self._log(spec, name, "inference-server"), INIT_LOG_LINES))
                    if died
                    else (),
                )
                continue
            timeout = probe_due(record, spec, now, policy)
            seen[name] = Seen(alive=True, probe=processes.probe(record.port, timeout) if timeout is not None else None)
        return seen

    def _carry_out(
        self, spec: DeploymentSpec, before: Mapping[str, InstanceState], plan: Plan, python: Path
    ) -> dict[str, InstanceState]:
        """Do what the plan says, in its order; returns the instances' records afterwards (saved)."""
        records = dict(plan.instances)
        folder = self.deployment_dir(spec)
        for name, record in records.items():
            if before.get(name) != record:
                state.save(folder, record)
        for action in plan.actions:
            if isinstance(action, Emit):
                self._emit(action)
            elif isinstance(action, Stop):
                processes.stop(action.instance)
            elif isinstance(action, Restart):
                records[action.name] = self._start(spec, records[action.name], python)
                record = records[action.name]
                self._emit(
                    Emit(
                        "InstanceRestarted",
                        f"instance {record.name} restarted (restart {record.restarts}) on port {record.port}",
                        instance=record.name,
                        container="inference-server",
                    )
                )
            elif isinstance(action, Retire):
                self._retire(spec, records, action.names)
            elif isinstance(action, Create):
                if not self._create(spec, records, action, python):
                    break  # the storage initializer failed: the spec cannot be reached, create no more
        return records

    def _start(self, spec: DeploymentSpec, record: InstanceState, python: Path) -> InstanceState:
        folder = self._instance_dir(spec, record.name)
        process = processes.start(
            spec,
            folder,
            initializer.layout(spec, folder),
            python,
            self._log(spec, record.name, "inference-server"),
            self._log(spec, record.name, "inference-server", previous=True),
        )
        record = started(record, pid=process.pid, port=process.port, create_time=process.create_time, at=process.at)
        state.save(self.deployment_dir(spec), record)
        return record

    def _create(self, spec: DeploymentSpec, records: dict[str, InstanceState], action: Create, python: Path) -> bool:
        record = new_instance(spec, action.name, action.index)
        records[action.name] = record
        began = time.monotonic()
        try:
            initializer.initialize(
                spec, self._instance_dir(spec, action.name), self._log(spec, action.name, "storage-initializer")
            )
        except initializer.InitializerFailed as exc:
            records[action.name] = replace(record, phase="Failed", reason=exc.reason, message=exc.message)
            state.save(self.deployment_dir(spec), records[action.name])
            self._emit(
                Emit(exc.reason, exc.message, warning=True, instance=action.name, container="storage-initializer")
            )
            return False
        self._emit(
            Emit(
                "StorageInitialized",
                f"model and code laid out for instance {action.name}",
                instance=action.name,
                container="storage-initializer",
                duration_ms=int((time.monotonic() - began) * 1000),
            )
        )
        record = records[action.name] = self._start(spec, record, python)
        self._emit(
            Emit(
                "InstanceStarted",
                f"instance {action.name} started (pid {record.pid}, port {record.port})",
                instance=action.name,
                container="inference-server",
            )
        )
        return True

    def _retire(self, spec: DeploymentSpec, records: dict[str, InstanceState], names: tuple[str, ...]) -> None:
        """Take instances out of routing, let gateways reload and requests finish, then stop them."""
        folder = self.deployment_dir(spec)
        for name in names:
            records[name] = replace(records[name], ready=False, phase="Terminating")
            state.save(folder, records[name])
        if self.reporter is not None:
            self.reporter.observed(self._observed(spec, records, None))
        time.sleep(self.drain_s)
        for name in names:
            processes.stop(records.pop(name))
            shutil.rmtree(folder / name, ignore_errors=True)
            self._emit(Emit("InstanceStopped", f"instance {name} stopped", instance=name))

    # --- reporting ---

    def _emit(self, action: Emit) -> None:
        event = BackendEvent(
            reason=action.reason,
            message=action.message,
            type="Warning" if action.warning else "Normal",
            instance=action.instance,
            container=action.container,
            at=datetime.now(UTC),
        )
        if self.reporter is not None:
            self.reporter.event(event, action.duration_ms)
        else:
            self._unreported.append(event)

    def _observed(
        self, spec: DeploymentSpec, records: Mapping[str, InstanceState], failure: tuple[str, str] | None
    ) -> Observed:
        instances = tuple(
            InstanceStatus(
                name=record.name,
                state=record.phase,
                ready=record.ready,
                address=f"http://127.0.0.1:{record.port}" if record.port else "",
                generation=record.generation,
                restarts=record.restarts,
                pid=record.pid,
                port=record.port or None,
                started_at=datetime.fromisoformat(record.started_at) if record.started_at else None,
                message=record.message,
            )
            for record in sorted(records.values(), key=lambda item: (item.template, item.index))
        )
        reason, message = failure or ("", "")
        return Observed(
            instances=instances, failed_reason=reason, failed_message=message, events=tuple(self._unreported)
        )

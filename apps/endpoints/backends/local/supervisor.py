"""The local supervisor's decisions, as a pure function: (observed processes, desired spec, clock) → actions.

There is no kubelet on this machine: the worker supervises the instances. `step` looks at what one
tick saw of every instance (alive or not, how it exited, what a probe answered, the end of its log)
and decides what to do: restart a crashed process after its back-off, give up into
CrashLoopBackOff, mark instances ready or unready from their probes, restart one that fails its
liveness probe, fail one whose init() raised, create missing instances, and retire surplus or
outdated ones without ever dropping below the wanted number of ready instances. It reads no clock,
file or process of its own; `backend.py` carries the actions out.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from apps.endpoints.backends.base import DeploymentSpec
from apps.endpoints.backends.local.state import InstanceState

FAILED, TERMINATING, CRASH_LOOP = "Failed", "Terminating", "CrashLoopBackOff"
# A traceback's exception line: unindented `RuntimeError: ...` or `entry_module.ModelMissing: ...`.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(: |$)")
INIT_FAILED_MARK = "User's init function failed"
LOG_TAIL_LINES = 30
# A pending instance whose restart is further away than this is not waited for: the next pass sees it.
WAIT_FOR_RESTART_S = 3.0


@dataclass(frozen=True)
class Policy:
    """Supervision timings that are not part of the deployment's spec."""

    restart_backoff_s: float = 1.0  # the first restart's delay; doubled per crash in a row
    max_backoff_s: float = 60.0
    crashloop_restarts: int = 3  # crashes in a row before an instance is CrashLoopBackOff
    stable_after_s: float = 60.0  # up this long without a crash: the back-off starts from scratch (as the kubelet's)
    fast_probe_s: float = 0.2  # readiness polling until the first success
    max_surge: int = 1  # instances beyond instance_count while rolling to a new template

    def backoff(self, crashes: int) -> float:
        """Seconds before restarting an instance that crashed `crashes` times in a row."""
        return min(self.max_backoff_s, self.restart_backoff_s * 2 ** max(0, crashes - 1))


@dataclass(frozen=True)
class Seen:
    """What one tick saw of one instance."""

    alive: bool
    exit_code: int | None = None  # when the process is gone and this worker saw how it ended
    probe: bool | None = None  # GET / answered 200; None when no probe was due
    log_tail: tuple[str, ...] = ()  # the end of its log, read when the process has just died


@dataclass(frozen=True)
class Emit:
    """Report an event on the deployment's timeline."""

    reason: str
    message: str
    warning: bool = False
    instance: str = ""
    container: str = ""
    duration_ms: int | None = None


@dataclass(frozen=True)
class Stop:
    """Stop the process `instance` names (the instance's record as it was before this step)."""

    instance: InstanceState


@dataclass(frozen=True)
class Restart:
    """Start the process of an existing instance again, on the files it already has."""

    name: str


@dataclass(frozen=True)
class Create:
    """Lay out a new instance's files (the storage initializer) and start its process."""

    name: str
    index: int


@dataclass(frozen=True)
class Retire:
    """Take instances out of routing, let requests in flight finish, stop them and remove their folders."""

    names: tuple[str, ...]


Action = Emit | Stop | Restart | Create | Retire


@dataclass(frozen=True)
class Plan:
    """The outcome of one step: every instance's new record, what to do, and whether to look again soon."""

    instances: Mapping[str, InstanceState]
    actions: tuple[Action, ...] = ()
    wait: bool = False  # something is on its way to the spec and a moment's wait may see it there
    failure: tuple[str, str] | None = None  # (Azure reason, message) when the spec cannot be reached as it is


# --- the spec's instances ---


def template_of(spec: DeploymentSpec) -> str:
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


def wanted_names(spec: DeploymentSpec) -> tuple[str, ...]:
    """The names of the instances the spec wants: `<deployment>-<template>-<index>`."""
    template = template_of(spec)
    return tuple(f"{spec.name}-{template}-{index}" for index in range(spec.instance_count))


def new_instance(spec: DeploymentSpec, name: str, index: int) -> InstanceState:
    """The record of an instance about to be created."""
    return InstanceState(name=name, index=index, template=template_of(spec), generation=spec.generation)


def started(state: InstanceState, *, pid: int, port: int, create_time: float | None, at: datetime) -> InstanceState:
    """The record of an instance whose process was just started."""
    return replace(
        state,
        pid=pid,
        port=port,
        create_time=create_time,
        started_at=at.isoformat(),
        phase="Starting",
        ready=False,
        ready_ok=0,
        ready_fail=0,
        live_fail=0,
        last_probe=0.0,
        reason="",
        message="",
    )


# --- one instance ---


def probe_due(state: InstanceState, spec: DeploymentSpec, now: float, policy: Policy) -> float | None:
    """The probe's timeout when the instance is due a GET / now, else None."""
    if state.phase in (FAILED, TERMINATING) or state.pid is None:
        return None
    readiness, liveness = spec.readiness_probe, spec.liveness_probe
    if not state.ready:
        # Until the first success the probe is polled fast: the runtime only listens once init() is done,
        # so an early answer cannot be a false positive, and Succeeded comes within a poll of being true.
        period = policy.fast_probe_s if not state.ever_ready or state.phase == "Starting" else readiness.period
        return float(readiness.timeout) if now - state.last_probe >= period else None
    if now - state.last_probe < min(liveness.period, readiness.period):
        return None
    return float(max(liveness.timeout, readiness.timeout))


def just_died(state: InstanceState, alive: bool) -> bool:
    """The process is gone and this is the first tick to notice (its log tail is then worth reading)."""
    return not alive and state.phase not in (FAILED, TERMINATING) and not _waiting_to_restart(state)


def _waiting_to_restart(state: InstanceState) -> bool:
    return state.phase == CRASH_LOOP or (state.pid is None and bool(state.next_start))


def init_failure(lines: Sequence[str]) -> tuple[str, str] | None:
    """Azure's reason and message when the runtime logged that the user's script failed to load or init."""
    marks = [i for i, line in enumerate(lines) if INIT_FAILED_MARK in line]
    if not marks:
        return None
    failure = list(lines[marks[-1] :])
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


def _running_for(state: InstanceState, now: float) -> float:
    return now - datetime.fromisoformat(state.started_at).timestamp() if state.started_at else 0.0


def tick(
    state: InstanceState, seen: Seen, spec: DeploymentSpec, now: float, policy: Policy
) -> tuple[InstanceState, list[Action]]:
    """One instance: its process, its probes, its restarts."""
    name = state.name
    if state.phase in (FAILED, TERMINATING):
        return state, []
    if not seen.alive:
        return _dead(state, seen, now, policy)
    running_for = _running_for(state, now)
    readiness, liveness = spec.readiness_probe, spec.liveness_probe
    if not state.ready:
        if probe_due(state, spec, now, policy) is None or seen.probe is None:
            return state, []
        state = replace(state, last_probe=now)
        if seen.probe:
            state = replace(state, ready_ok=state.ready_ok + 1, ready_fail=0)
            if state.ready_ok < readiness.success_threshold:
                return state, []
            ready = Emit(
                "InstanceReady",
                f"instance {name} is ready on port {state.port} (generation {state.generation})",
                instance=name,
                container="inference-server",
                duration_ms=int(running_for * 1000),
            )
            return replace(state, ready=True, phase="Ready", ever_ready=True), [ready]
        deadline = readiness.initial_delay + readiness.period * readiness.failure_threshold
        if running_for <= deadline:
            return state, []
        stop: list[Action] = [Stop(state)]
        state = replace(state, pid=None, ready=False)
        if state.ever_ready:
            crashes = state.crashes + 1
            return replace(state, crashes=crashes, next_start=now + policy.backoff(crashes), phase="Unready"), stop
        message = (
            f"instance {name} did not answer GET / on port {state.port} within {deadline} s "
            f"(readiness_probe initial_delay + period × failure_threshold)"
        )
        failed = replace(state, phase=FAILED, reason="ReadinessProbeFailed", message=message)
        return failed, [*stop, Emit("ReadinessProbeFailed", message, warning=True, instance=name)]
    if running_for > policy.stable_after_s and state.crashes:
        state = replace(state, crashes=0)
    if probe_due(state, spec, now, policy) is None or seen.probe is None:
        return state, []
    state = replace(state, last_probe=now)
    if seen.probe:
        return replace(state, live_fail=0, ready_fail=0), []
    state = replace(state, live_fail=state.live_fail + 1, ready_fail=state.ready_fail + 1)
    actions: list[Action] = []
    if state.ready_fail >= readiness.failure_threshold and state.ready:
        state = replace(state, ready=False, phase="Unready")
        stopped = f"instance {name} stopped answering GET /"
        actions.append(Emit("ReadinessProbeFailed", stopped, warning=True, instance=name))
    if running_for > liveness.initial_delay and state.live_fail >= liveness.failure_threshold:
        actions.append(
            Emit(
                "LivenessProbeFailed",
                f"instance {name} failed {state.live_fail} liveness probes; restarting it",
                warning=True,
                instance=name,
            )
        )
        actions.append(Stop(state))
        crashes = state.crashes + 1
        state = replace(
            state, crashes=crashes, pid=None, ready=False, phase="Unready", next_start=now + policy.backoff(crashes)
        )
    return state, actions


def _dead(state: InstanceState, seen: Seen, now: float, policy: Policy) -> tuple[InstanceState, list[Action]]:
    name = state.name
    if _waiting_to_restart(state):
        if now >= state.next_start:
            return _restarting(state), [Restart(name)]
        return state, []
    failure = init_failure(seen.log_tail) if not state.ever_ready else None
    if failure is not None:
        failed = replace(state, phase=FAILED, ready=False, pid=None, reason=failure[0], message=failure[1])
        return failed, [Emit(failure[0], failure[1], warning=True, instance=name, container="inference-server")]
    crashes = state.crashes + 1
    delay = policy.backoff(crashes)
    state = replace(state, crashes=crashes, ready=False, pid=None, next_start=now + delay)
    exit_text = f"exited with code {seen.exit_code}" if seen.exit_code is not None else "is no longer running"
    actions: list[Action]
    if crashes >= policy.crashloop_restarts:
        last = "\n".join(seen.log_tail[-10:])
        state = replace(
            state,
            phase=CRASH_LOOP,
            reason=CRASH_LOOP,
            message=f"crashed {crashes} times in a row; last log lines:\n{last}",
        )
        text = (
            f"instance {name} {exit_text}; crashed {crashes} times in a row, back-off {delay:.1f} s before restarting"
        )
        actions = [Emit(CRASH_LOOP, text, warning=True, instance=name, container="inference-server")]
    else:
        state = replace(state, phase="Unready")
        text = f"instance {name} {exit_text}; restarting in {delay:.1f} s"
        actions = [Emit("InstanceCrashed", text, warning=True, instance=name, container="inference-server")]
    if now >= state.next_start:
        state = _restarting(state)
        actions.append(Restart(name))
    return state, actions


def _restarting(state: InstanceState) -> InstanceState:
    """The record of an instance whose restart is decided (the process fields follow once it runs)."""
    return replace(state, restarts=state.restarts + 1, phase="Starting")


# --- the deployment ---


def _recreate(state: InstanceState | None, spec: DeploymentSpec) -> bool:
    """No instance by that name, or one that failed at an older generation (a new spec deserves a new try)."""
    return state is None or (state.phase == FAILED and state.generation < spec.generation)


def failure_of(spec: DeploymentSpec, instances: Mapping[str, InstanceState]) -> tuple[str, str] | None:
    """Why the spec cannot be reached: a wanted instance failed for good, or every wanted one crash-loops."""
    current = [instances[name] for name in wanted_names(spec) if not _recreate(instances.get(name), spec)]
    terminal = [state for state in current if state.phase == FAILED and state.reason]
    if terminal:
        return terminal[0].reason, terminal[0].message
    if current and all(state.phase == CRASH_LOOP for state in current):
        return CRASH_LOOP, current[0].message
    return None


def step(
    spec: DeploymentSpec,
    instances: Mapping[str, InstanceState],
    seen: Mapping[str, Seen],
    now: float,
    policy: Policy,
) -> Plan:
    """Decide one supervision tick of a deployment: every instance's new record and the actions to carry out."""
    wanted = wanted_names(spec)
    records = dict(instances)
    actions: list[Action] = []
    missing: list[tuple[int, str]] = []
    for index, name in enumerate(wanted):
        state = records.get(name)
        if _recreate(state, spec):
            missing.append((index, name))
        elif state is not None and state.generation != spec.generation:
            records[name] = replace(state, generation=spec.generation)
    for name in sorted(records):
        records[name], done = tick(records[name], seen.get(name, Seen(alive=False)), spec, now, policy)
        actions.extend(done)
    failure = failure_of(spec, records)

    # Retire: surplus that serves nothing goes at once; surplus that serves goes only while the
    # ready instances stay at least instance_count (a rolling update never lowers capacity).
    surplus = [state for name, state in records.items() if name not in wanted]
    ready_total = sum(1 for state in records.values() if state.ready and state.phase != TERMINATING)
    retiring: list[str] = []
    for state in sorted(surplus, key=lambda item: (item.ready, -item.index, item.name)):
        if not state.ready:
            retiring.append(state.name)
        elif ready_total - 1 >= spec.instance_count:
            retiring.append(state.name)
            ready_total -= 1
    if retiring:
        # A retired instance is not restarted on its way out.
        actions = [a for a in actions if not (isinstance(a, Restart) and a.name in retiring)]
        actions.append(Retire(tuple(sorted(retiring))))

    # Create: every missing instance at once for a new deployment or a scale-up; while outdated
    # instances still run, at most `max_surge` beyond instance_count.
    live = sum(
        1 for name, state in records.items() if name not in retiring and state.phase not in (FAILED, TERMINATING)
    )
    limit = spec.instance_count + policy.max_surge
    waiting_for_room = False
    for index, name in missing:
        if failure is not None:
            break
        if live >= limit:
            waiting_for_room = True
            break
        actions.append(Create(name, index))
        live += 1

    pending = [records[name] for name in wanted if not _recreate(records.get(name), spec) and not records[name].ready]
    if failure is not None:
        wait = False
    elif any(isinstance(action, (Create, Retire, Restart)) for action in actions):
        wait = True
    elif any(state.phase in (FAILED, CRASH_LOOP) for state in pending):
        wait = False
    elif pending and all(state.pid is None and state.next_start - now > WAIT_FOR_RESTART_S for state in pending):
        wait = False  # a restart far off in its back-off is left to the next pass
    else:
        wait = bool(pending) or waiting_for_room
    return Plan(instances=records, actions=tuple(actions), wait=wait, failure=failure)

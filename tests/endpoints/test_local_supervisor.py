"""The local supervisor's decisions, without processes: what one tick does given what it saw, the spec
and the clock (apps/endpoints/backends/local/supervisor.py). The thin part that carries the actions
out is covered end to end in test_local_backend.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from apps.endpoints.backends.base import DeploymentSpec, EnvironmentSpec, InstanceTypeSpec, ProbeSpec
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
    init_failure,
    probe_due,
    step,
    template_of,
    wanted_names,
)

NOW = 1_800_000_000.0
POLICY = Policy(restart_backoff_s=1.0, crashloop_restarts=3)
SPEC = DeploymentSpec(
    uid="5b0e",
    name="blue",
    endpoint_uid="e1",
    endpoint_name="ep1",
    generation=2,
    environment=EnvironmentSpec(
        name="env", version="1", image="", conda_file=None, pip_requirements="", spec_hash="abc"
    ),
    instance_type=InstanceTypeSpec(name="Standard_DS2_v2", vcpus=2, memory_gib=7.0),
    instance_count=1,
    environment_variables={"VERSION": "1"},
    readiness_probe=ProbeSpec(initial_delay=2, period=5, timeout=1, success_threshold=1, failure_threshold=3),
    liveness_probe=ProbeSpec(initial_delay=10, period=5, timeout=2, success_threshold=1, failure_threshold=3),
)
INIT_FAILED_LOG = (
    "INFO runtime: loading score.py",
    "ERROR runtime: User's init function failed",
    "Traceback (most recent call last):",
    '  File "/app/score.py", line 5, in init',
    "    raise RuntimeError('model weights are corrupt')",
    "RuntimeError: model weights are corrupt",
)
IMPORT_FAILED_LOG = (
    "ERROR runtime: User's init function failed",
    "Traceback (most recent call last):",
    '  File "/app/score.py", line 1, in <module>',
    "ModuleNotFoundError: No module named 'sklearn_typo'",
)


def at(seconds_ago: float) -> str:
    return datetime.fromtimestamp(NOW - seconds_ago, UTC).isoformat()


def running(index: int = 0, spec: DeploymentSpec = SPEC, **changes: object) -> InstanceState:
    """A ready instance of `spec`, up for 100 s, probed a second ago."""
    state = InstanceState(
        name=wanted_names(replace(spec, instance_count=index + 1))[index],
        index=index,
        template=template_of(spec),
        generation=spec.generation,
        port=5000 + index,
        pid=100 + index,
        create_time=NOW - 100,
        started_at=at(100),
        phase="Ready",
        ready=True,
        ever_ready=True,
        last_probe=NOW - 1,
    )
    return replace(state, **changes)  # type: ignore[arg-type]


def starting(index: int = 0, spec: DeploymentSpec = SPEC, *, up_for: float = 1.0, **changes: object) -> InstanceState:
    return running(
        index, spec, phase="Starting", ready=False, ever_ready=False, started_at=at(up_for), last_probe=0.0, **changes
    )


def alive(probe: bool | None = None) -> Seen:
    return Seen(alive=True, probe=probe)


def dead(exit_code: int | None = -9, log: tuple[str, ...] = ("serving",)) -> Seen:
    return Seen(alive=False, exit_code=exit_code, log_tail=log)


def run(instances: list[InstanceState], seen: list[Seen], *, spec: DeploymentSpec = SPEC, now: float = NOW) -> Plan:
    return step(
        spec, {s.name: s for s in instances}, {s.name: v for s, v in zip(instances, seen, strict=True)}, now, POLICY
    )


def reasons(plan: Plan) -> list[str]:
    return [action.reason for action in plan.actions if isinstance(action, Emit)]


def kinds(plan: Plan) -> list[str]:
    return [type(action).__name__ for action in plan.actions if not isinstance(action, Emit)]


# --- crashes and restarts ---


def test_a_crash_is_reported_and_restarted_once_its_back_off_has_passed() -> None:
    instance = running()
    crashed = run([instance], [dead(exit_code=-9)])
    assert reasons(crashed) == ["InstanceCrashed"]
    assert "exited with code -9; restarting in 1.0 s" in crashed.actions[0].message  # type: ignore[union-attr]
    after = crashed.instances[instance.name]
    assert (after.phase, after.ready, after.pid, after.crashes, after.next_start) == (
        "Unready",
        False,
        None,
        1,
        NOW + 1,
    )
    assert kinds(crashed) == [] and crashed.wait  # restarting within seconds: worth waiting for

    too_early = step(SPEC, crashed.instances, {instance.name: dead(None)}, NOW + 0.5, POLICY)
    assert too_early.actions == ()
    due = step(SPEC, crashed.instances, {instance.name: dead(None)}, NOW + 1, POLICY)
    assert due.actions == (Restart(instance.name),)
    assert due.instances[instance.name].restarts == 1


@pytest.mark.parametrize(("crashes", "delay"), [(1, 1), (2, 2), (3, 4), (4, 8), (6, 32), (7, 60), (20, 60)])
def test_the_back_off_doubles_per_crash_in_a_row_up_to_a_minute(crashes: int, delay: float) -> None:
    assert POLICY.backoff(crashes) == delay


def test_the_third_crash_in_a_row_is_crash_loop_back_off_and_fails_the_deployment() -> None:
    instance = running(crashes=2)
    plan = run([instance], [dead(exit_code=1, log=("loading", "Killed: out of memory"))])
    assert reasons(plan) == ["CrashLoopBackOff"]
    after = plan.instances[instance.name]
    assert after.phase == "CrashLoopBackOff" and after.next_start == NOW + 4
    assert after.message == "crashed 3 times in a row; last log lines:\nloading\nKilled: out of memory"
    assert plan.failure == ("CrashLoopBackOff", after.message)
    assert not plan.wait


def test_a_crash_looping_instance_keeps_being_restarted_after_its_back_off() -> None:
    looping = running(phase="CrashLoopBackOff", pid=None, ready=False, crashes=3, next_start=NOW - 0.1)
    plan = run([looping], [Seen(alive=False)])
    assert plan.actions == (Restart(looping.name),)
    assert plan.instances[looping.name].phase == "Starting" and plan.failure is None
    assert plan.wait


def test_one_crash_looping_instance_of_two_does_not_fail_the_deployment() -> None:
    spec = replace(SPEC, instance_count=2)
    looping = running(0, spec, phase="CrashLoopBackOff", pid=None, ready=False, crashes=3, next_start=NOW + 30)
    plan = run([looping, running(1, spec)], [Seen(alive=False), alive()], spec=spec)
    assert plan.failure is None
    assert not plan.wait  # its restart is half a minute away: the next pass sees it


def test_an_instance_up_a_minute_starts_its_back_off_from_scratch() -> None:
    plan = run([running(crashes=2)], [alive()])
    assert next(iter(plan.instances.values())).crashes == 0


# --- the user's script ---


@pytest.mark.parametrize(
    ("log", "reason", "first_line"),
    [
        (INIT_FAILED_LOG, "UserScriptInitFailed", "the scoring script's init() raised: RuntimeError: model weights"),
        (IMPORT_FAILED_LOG, "UserScriptImportError", "importing the scoring script failed: ModuleNotFoundError: No"),
    ],
)
def test_a_script_that_fails_before_its_first_readiness_fails_for_good(
    log: tuple[str, ...], reason: str, first_line: str
) -> None:
    instance = starting()
    plan = run([instance], [dead(exit_code=1, log=log)])
    after = plan.instances[instance.name]
    assert (after.phase, after.reason) == ("Failed", reason)
    assert after.message.startswith(first_line)
    assert "--- last log lines ---" in after.message
    assert reasons(plan) == [reason] and kinds(plan) == []
    assert plan.failure == (reason, after.message) and not plan.wait


def test_init_failure_names_the_users_own_exception_not_the_runtimes_wrapper() -> None:
    log = (
        "User's init function failed",
        "entry_module.ModelMissing: no weights.bin",
        "",
        "runtime.scoring.ScriptError: init() failed",
    )
    found = init_failure(log)
    assert (
        found is not None
        and found[1].splitlines()[0] == "the scoring script's init() raised: ModelMissing: no weights.bin"
    )
    assert init_failure(("all good", "serving")) is None


def test_an_instance_that_served_before_is_restarted_even_if_its_log_says_init_failed() -> None:
    plan = run([running()], [dead(log=INIT_FAILED_LOG)])
    assert reasons(plan) == ["InstanceCrashed"]
    assert plan.failure is None


# --- probes ---


def test_a_starting_instance_is_ready_on_its_first_good_probe_and_says_how_long_it_took() -> None:
    instance = starting(up_for=3.5)
    plan = run([instance], [alive(probe=True)])
    after = plan.instances[instance.name]
    assert (after.phase, after.ready, after.ever_ready) == ("Ready", True, True)
    [ready] = [action for action in plan.actions if isinstance(action, Emit)]
    assert ready.reason == "InstanceReady" and ready.duration_ms == 3500
    assert not plan.wait


def test_a_success_threshold_of_two_needs_two_good_probes() -> None:
    spec = replace(SPEC, readiness_probe=replace(SPEC.readiness_probe, success_threshold=2))
    instance = starting(spec=spec)
    first = run([instance], [alive(probe=True)], spec=spec)
    assert not first.instances[instance.name].ready and first.wait
    second = step(spec, first.instances, {instance.name: alive(probe=True)}, NOW + 0.2, POLICY)
    assert second.instances[instance.name].ready


@pytest.mark.parametrize(
    ("state", "since_last_probe", "due"),
    [
        ("starting", 0.1, None),
        ("starting", 0.2, 1.0),  # polled fast until its first success
        ("ready", 4.9, None),
        ("ready", 5.0, 2.0),  # every period, with the longer of the two timeouts
        ("unready-after-ready", 4.0, None),
        ("unready-after-ready", 5.0, 1.0),
    ],
)
def test_probes_are_due_fast_while_starting_then_every_period(
    state: str, since_last_probe: float, due: float | None
) -> None:
    instance = {
        "starting": starting(),
        "ready": running(),
        "unready-after-ready": running(phase="Unready", ready=False),
    }[state]
    assert probe_due(replace(instance, last_probe=NOW - since_last_probe), SPEC, NOW, POLICY) == due


def test_an_instance_not_ready_within_the_readiness_deadline_is_stopped_and_fails() -> None:
    instance = starting(up_for=18)  # initial_delay 2 + period 5 × failure_threshold 3 = 17 s
    plan = run([instance], [alive(probe=False)])
    after = plan.instances[instance.name]
    assert kinds(plan) == ["Stop"]
    assert isinstance(plan.actions[0], Stop) and plan.actions[0].instance.pid == instance.pid
    assert (after.phase, after.reason, after.pid) == ("Failed", "ReadinessProbeFailed", None)
    assert "within 17 s" in after.message
    assert plan.failure == ("ReadinessProbeFailed", after.message)


def test_a_starting_instance_within_its_deadline_is_waited_for() -> None:
    plan = run([starting(up_for=16)], [alive(probe=False)])
    assert plan.actions == () and plan.wait and plan.failure is None


def test_failed_readiness_probes_past_the_threshold_take_a_ready_instance_out_of_routing() -> None:
    instance = running(ready_fail=2, live_fail=0, last_probe=NOW - 5)
    plan = run([instance], [alive(probe=False)])
    after = plan.instances[instance.name]
    assert (after.ready, after.phase, after.ready_fail) == (False, "Unready", 3)
    assert reasons(plan) == ["ReadinessProbeFailed"] and kinds(plan) == []


def test_failed_liveness_probes_past_the_threshold_restart_the_instance_after_a_back_off() -> None:
    instance = running(live_fail=2, last_probe=NOW - 5)
    plan = run([instance], [alive(probe=False)])
    after = plan.instances[instance.name]
    assert reasons(plan) == ["LivenessProbeFailed"] and kinds(plan) == ["Stop"]
    assert (after.pid, after.phase, after.crashes, after.next_start) == (None, "Unready", 1, NOW + 1)


def test_liveness_failures_during_its_initial_delay_do_not_restart() -> None:
    instance = running(live_fail=2, last_probe=NOW - 5, started_at=at(8))  # liveness initial_delay is 10 s
    plan = run([instance], [alive(probe=False)])
    assert "Stop" not in kinds(plan)


def test_a_good_probe_clears_the_failure_counts() -> None:
    instance = running(live_fail=2, ready_fail=2, last_probe=NOW - 5)
    after = run([instance], [alive(probe=True)]).instances[instance.name]
    assert (after.live_fail, after.ready_fail, after.last_probe) == (0, 0, NOW)


# --- scale and roll ---


def test_a_new_deployment_creates_every_instance_at_once() -> None:
    spec = replace(SPEC, instance_count=3)
    plan = run([], [], spec=spec)
    assert plan.actions == tuple(Create(name, index) for index, name in enumerate(wanted_names(spec)))
    assert plan.wait


def test_scale_up_adds_the_missing_instances_and_keeps_the_one_that_runs() -> None:
    spec = replace(SPEC, instance_count=3, generation=3)
    plan = run([running(0, spec)], [alive()], spec=spec)
    names = wanted_names(spec)
    assert plan.actions == (Create(names[1], 1), Create(names[2], 2))


def test_scale_down_retires_the_highest_instances_while_the_first_keeps_serving() -> None:
    three = replace(SPEC, instance_count=3)
    instances = [running(index, three) for index in range(3)]
    spec = replace(three, instance_count=1, generation=3)
    plan = run(instances, [alive()] * 3, spec=spec)
    assert plan.actions == (Retire((instances[1].name, instances[2].name)),)
    assert plan.instances[instances[0].name].generation == 3


def test_a_new_template_rolls_one_instance_at_a_time_and_never_lowers_capacity() -> None:
    old_spec = replace(SPEC, instance_count=2)
    new_spec = replace(old_spec, generation=3, environment_variables={"VERSION": "2"})
    old = [running(index, old_spec) for index in range(2)]
    new = wanted_names(new_spec)

    first = run(old, [alive()] * 2, spec=new_spec)
    assert first.actions == (Create(new[0], 0),)  # one beyond instance_count; both old ones keep serving

    new0 = starting(0, new_spec)
    still_starting = run([*old, new0], [alive()] * 3, spec=new_spec)
    assert kinds(still_starting) == [] and still_starting.wait  # nothing retired while the new one is not ready

    new0_ready = run([*old, running(0, new_spec)], [alive()] * 3, spec=new_spec)
    assert kinds(new0_ready) == ["Retire", "Create"]
    [retire] = [action for action in new0_ready.actions if isinstance(action, Retire)]
    assert len(retire.names) == 1 and retire.names[0] in {instance.name for instance in old}
    assert Create(new[1], 1) in new0_ready.actions

    last = run([old[0], running(0, new_spec), running(1, new_spec)], [alive()] * 3, spec=new_spec)
    assert last.actions == (Retire((old[0].name,)),)

    done = run([running(0, new_spec), running(1, new_spec)], [alive()] * 2, spec=new_spec)
    assert done.actions == () and not done.wait


def test_a_failed_update_leaves_the_old_instance_serving_and_creates_nothing_more() -> None:
    old = running(0, SPEC)
    new_spec = replace(SPEC, generation=3, environment_variables={"VERSION": "2"}, instance_count=2)
    failed = running(
        0, new_spec, pid=None, ready=False, phase="Failed", reason="UserScriptInitFailed", message="init() raised"
    )
    plan = run([old, failed], [alive(), Seen(alive=False)], spec=new_spec)
    assert plan.failure == ("UserScriptInitFailed", "init() raised")
    assert plan.actions == () and not plan.wait


def test_outdated_instances_that_serve_nothing_are_retired_at_once() -> None:
    new_spec = replace(SPEC, generation=3, environment_variables={"VERSION": "2"})
    broken_old = running(0, SPEC, phase="CrashLoopBackOff", ready=False, pid=None, crashes=4, next_start=NOW)
    plan = run([broken_old], [Seen(alive=False)], spec=new_spec)
    # Not restarted on its way out; the new instance does not wait for it.
    assert kinds(plan) == ["Retire", "Create"]


def test_an_instance_that_failed_at_an_older_generation_gets_a_new_try() -> None:
    failed = running(0, SPEC, pid=None, ready=False, phase="Failed", reason="ModelNotFound", generation=1)
    plan = run([failed], [Seen(alive=False)])
    assert plan.actions == (Create(failed.name, 0),)
    assert plan.failure is None


def test_an_instance_on_its_way_out_is_retired_again_after_a_worker_died_mid_retire() -> None:
    new_spec = replace(SPEC, generation=3, environment_variables={"VERSION": "2"})
    leaving = running(0, SPEC, phase="Terminating", ready=False)
    plan = run([leaving, running(0, new_spec)], [alive(), alive()], spec=new_spec)
    assert plan.actions == (Retire((leaving.name,)),)


def test_a_steady_deployment_needs_nothing() -> None:
    spec = replace(SPEC, instance_count=2)
    plan = run([running(0, spec), running(1, spec)], [alive(), alive()], spec=spec)
    assert plan.actions == () and not plan.wait and plan.failure is None

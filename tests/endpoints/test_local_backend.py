"""The local backend end to end: real `studio-infsrv` processes from real environments, driven by the
reconcile task functions called synchronously (as a Celery worker would call them).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps.endpoints import reconcile, services
from apps.endpoints.backends.local import LocalBackend
from apps.endpoints.logs import deployment_logs
from apps.endpoints.models import Deployment, Instance
from apps.endpoints.selectors import deployment_view
from apps.endpoints.specs import deployment_spec
from tests import factories
from tests.endpoints.conftest import SCORE_PY, Client, instance_pids, runtime_processes, score

pytestmark = pytest.mark.django_db


def make_deployment(
    name: str = "blue", *, count: int = 1, env: dict[str, str] | None = None, **spec: Any
) -> Deployment:
    endpoint = factories.endpoint("ep1") if not _has_endpoint() else _endpoint()
    code = factories.upload_folder({"score.py": SCORE_PY})
    overrides: dict[str, Any] = {"instance_count": count, "environment_variables": env or {}}
    overrides.update(spec)
    return factories.deployment(endpoint, name, code=code, **overrides)


def _has_endpoint() -> bool:
    from apps.endpoints.models import Endpoint

    return Endpoint.objects.filter(name="ep1").exists()


def _endpoint() -> Any:
    from apps.endpoints.models import Endpoint

    return Endpoint.objects.get(name="ep1")


def settle(
    deployment: Deployment, *, timeout: float = 120, until: tuple[str, ...] = ("Succeeded", "Failed")
) -> Deployment:
    """Run reconcile passes (as the task and the periodic beat do) until the state is one of `until`."""
    deadline = time.monotonic() + timeout
    while True:
        reconcile.reconcile(deployment.pk)
        deployment.refresh_from_db()
        if deployment.state in until and deployment.observed_generation == deployment.generation:
            return deployment
        assert time.monotonic() < deadline, f"{deployment.state} {deployment.reason}: {deployment.message}"
        time.sleep(0.2)


def ready_addresses(deployment: Deployment) -> list[str]:
    return list(Instance.objects.filter(deployment=deployment, ready=True).values_list("address", flat=True))


def reasons(deployment: Deployment) -> list[str]:
    return list(deployment.events.values_list("reason", flat=True))


def test_create_reaches_succeeded_and_the_instance_answers_with_the_model_laid_out(local: Path) -> None:
    deployment = settle(make_deployment())
    assert deployment.state == "Succeeded", deployment.message
    assert deployment.ready_instances == 1
    [address] = ready_addresses(deployment)
    answer = score(address, {"data": [[1, 2, 3]]})
    assert answer.status_code == 200
    assert answer.json()["echo"] == {"data": [[1, 2, 3]]}
    # AZUREML_MODEL_DIR holds the model's own file, named as registered (factories register "model.pkl").
    assert answer.json()["model_files"] == ["model.pkl"]
    timeline = reasons(deployment)
    for stage in (
        "Creating",
        "EnvironmentReady",
        "StorageInitialized",
        "InstanceStarted",
        "InstanceReady",
        "Succeeded",
    ):
        assert stage in timeline
    assert deployment.events.get(reason="Ready").duration_ms is not None
    view = deployment_view(deployment, viewer=None)  # what any reader sees
    assert view["provisioning_state"] == "Succeeded"
    assert view["instances"][0]["state"] == "Ready"
    # Capacity history: one run started, none stopped.
    assert deployment.instance_runs.filter(stopped_at__isnull=True).count() == 1
    # Both containers' logs are there for get-logs.
    initializer_log = deployment_logs(deployment=deployment, container="storage-initializer", lines=50)
    assert "model azureml:sklearn-model:1: 1 file(s)" in initializer_log
    server_log = deployment_logs(deployment=deployment, container="inference-server", lines=200)
    assert "ready for serving traffic" in server_log


def test_running_the_task_twice_changes_nothing(local: Path) -> None:
    deployment = settle(make_deployment())
    pids = instance_pids(local)
    events = deployment.events.count()
    assert reconcile.reconcile(deployment.pk) == "Succeeded"
    assert reconcile.reconcile(deployment.pk) == "Succeeded"
    assert instance_pids(local) == pids
    assert deployment.events.count() == events


def test_init_that_raises_fails_with_user_script_init_failed_and_the_exception(local: Path) -> None:
    deployment = settle(make_deployment(env={"FAIL_INIT": "checksum 0xdead"}))
    assert deployment.state == "Failed"
    assert deployment.reason == "UserScriptInitFailed"
    assert "RuntimeError: model weights are corrupt: checksum 0xdead" in deployment.message
    assert "User's init function failed" in deployment.message  # the last log lines come along
    shown = deployment_view(deployment, viewer=None)
    assert shown["reason"] == "UserScriptInitFailed"
    assert "model weights are corrupt" in shown["message"]
    assert not instance_pids(local)
    # A periodic pass does not retry what only a new spec can fix.
    before = deployment.events.count()
    reconcile.reconcile(deployment.pk)
    assert deployment.events.count() == before


def test_kill_9_restarts_the_instance_and_says_so(local: Path) -> None:
    deployment = settle(make_deployment())
    [pid] = instance_pids(local)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        reconcile.reconcile(deployment.pk)
        row = Instance.objects.get(deployment=deployment)
        if row.ready and row.pid != pid:
            break
        assert time.monotonic() < deadline, row.state
        time.sleep(0.2)
    assert row.restarts == 1
    assert {"InstanceCrashed", "InstanceRestarted"} <= set(reasons(deployment))
    crashed = deployment.events.get(reason="InstanceCrashed")
    assert crashed.type == "Warning" and "exited with code -9" in crashed.message
    assert score(row.address, {"a": 1}).status_code == 200
    # The crashed run's log is kept as the previous log.
    backend = LocalBackend()
    previous = backend.logs(deployment_spec(deployment), container="inference-server", lines=200, previous=True)
    assert "ready for serving traffic" in previous


def test_an_instance_that_keeps_crashing_ends_in_crash_loop_back_off(local: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.write_text("open")
    deployment = settle(make_deployment(env={"INIT_GATE": str(gate)}))
    assert deployment.state == "Succeeded"
    gate.unlink()  # every restart's init() now fails
    [pid] = instance_pids(local)
    os.kill(pid, signal.SIGKILL)
    deployment = settle(deployment, timeout=60, until=("Failed",))
    assert deployment.reason == "CrashLoopBackOff"
    assert "the gate file is missing" in deployment.message
    row = Instance.objects.get(deployment=deployment)
    assert row.state == "CrashLoopBackOff" and not row.ready
    assert row.restarts >= 2
    assert "CrashLoopBackOff" in reasons(deployment)
    # It recovers on its own once the cause is gone (the back-off keeps retrying).
    gate.write_text("open")
    deployment = settle(deployment, timeout=90, until=("Succeeded",))
    assert ready_addresses(deployment)


def test_scale_1_to_3_to_1_under_load_fails_no_request(local: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = settle(make_deployment())
    routing = ready_addresses(deployment)
    original = reconcile.instances_sync

    def publishing(**kwargs: Any) -> int:
        # What a gateway sees after each sync: the ready Instance rows.
        count = original(**kwargs)
        routing[:] = ready_addresses(deployment)
        return count

    monkeypatch.setattr(reconcile, "instances_sync", publishing)
    first = set(routing)
    with Client(lambda: list(routing)) as client:
        services.deployment_scale(deployment=deployment, instance_count=3, reason="test")
        deployment = settle(deployment)
        assert deployment.state == "Succeeded" and deployment.ready_instances == 3
        assert first <= set(routing), "the instance that stays keeps serving"
        services.deployment_scale(deployment=deployment, instance_count=1, reason="test")
        deployment = settle(deployment)
        time.sleep(0.3)
    assert deployment.ready_instances == 1
    assert set(routing) == first
    assert client.ok > 20 and client.failures == []
    assert len(instance_pids(local)) == 1
    assert "InstanceStopped" in reasons(deployment)
    # Capacity history: three runs started, two stopped.
    assert deployment.instance_runs.count() == 3
    assert deployment.instance_runs.filter(stopped_at__isnull=False).count() == 2


def test_rolling_update_keeps_answering_and_ends_on_the_new_version(
    local: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = settle(make_deployment(count=2, env={"VERSION": "1"}))
    routing = ready_addresses(deployment)
    original = reconcile.instances_sync

    def publishing(**kwargs: Any) -> int:
        count = original(**kwargs)
        routing[:] = ready_addresses(deployment)
        return count

    monkeypatch.setattr(reconcile, "instances_sync", publishing)
    old = set(routing)
    with Client(lambda: list(routing)) as client:
        time.sleep(0.3)
        services.deployment_update(deployment=deployment, changes={"environment_variables": {"VERSION": "2"}})
        deployment.refresh_from_db()
        assert deployment.state == "Updating"
        deployment = settle(deployment)
        time.sleep(0.3)
    assert deployment.state == "Succeeded"
    assert client.failures == []
    assert client.versions == {"1", "2"}
    assert not old & set(routing)
    assert len(instance_pids(local)) == 2
    for address in routing:
        assert score(address, {}).json()["version"] == "2"


def test_a_new_backend_object_re_adopts_running_instances_without_duplicates(local: Path) -> None:
    deployment = settle(make_deployment(count=2))
    pids = sorted(instance_pids(local))
    spec = deployment_spec(deployment)
    # A restarted worker: a fresh backend with nothing in memory, only the state files.
    observed = LocalBackend().apply(spec)
    assert observed.ready_count == 2
    assert sorted(instance.pid for instance in observed.instances) == pids
    assert len(runtime_processes(local)) == 2
    assert LocalBackend().observe(spec).ready_count == 2


def test_a_process_no_state_file_names_is_killed_not_left_as_a_duplicate(local: Path) -> None:
    deployment = settle(make_deployment())
    [stray] = instance_pids(local)
    # A worker killed between starting the process and writing its state file leaves an unnamed process.
    [state_file] = (local / str(deployment.uid)).glob("*/state.json")
    state_file.unlink()
    deployment = settle(deployment)
    processes = runtime_processes(local)
    assert [process.pid for process in processes] != [stray]
    assert len(processes) == 1
    assert ready_addresses(deployment)


def test_delete_stops_the_processes_frees_ports_and_folders_and_removes_the_rows(local: Path) -> None:
    deployment = settle(make_deployment(count=2))
    addresses = ready_addresses(deployment)
    folder = local / str(deployment.uid)
    assert folder.is_dir()
    endpoint = deployment.endpoint
    services.endpoint_delete(endpoint=endpoint)
    assert reconcile.delete(deployment.pk)
    assert not Deployment.objects.filter(pk=deployment.pk).exists()
    assert not type(endpoint).objects.filter(pk=endpoint.pk).exists()
    assert not folder.exists()
    assert runtime_processes(local) == []
    for address in addresses:
        with pytest.raises(httpx.ConnectError):
            httpx.get(address, timeout=2)
    from apps.costs.models import InstanceRun

    assert InstanceRun.objects.filter(deployment_name="blue", stopped_at__isnull=True).count() == 0


def test_a_missing_model_file_fails_with_model_not_found(local: Path) -> None:
    deployment = make_deployment()
    import shutil

    shutil.rmtree(deployment.model.root)
    deployment = settle(deployment)
    assert deployment.state == "Failed"
    assert deployment.reason == "ModelNotFound"
    assert "azureml:sklearn-model:1" in deployment.message
    log = deployment_logs(deployment=deployment, container="storage-initializer", lines=20)
    assert "ERROR model azureml:sklearn-model:1" in log


def test_a_script_that_cannot_be_imported_fails_with_user_script_import_error(local: Path) -> None:
    endpoint = factories.endpoint("ep1")
    code = factories.upload_folder({"score.py": "import studio_missing_module_xyz\n\ndef init():\n    pass\n"})
    deployment = settle(factories.deployment(endpoint, "blue", code=code))
    assert deployment.state == "Failed"
    assert deployment.reason == "UserScriptImportError"
    assert "No module named 'studio_missing_module_xyz'" in deployment.message


def test_an_instance_not_ready_within_the_readiness_probe_fails_with_readiness_probe_failed(local: Path) -> None:
    probe = {"initial_delay": 1, "period": 1, "failure_threshold": 1}
    deployment = settle(make_deployment(env={"INIT_SLEEP_S": "30"}, readiness_probe=probe))
    assert deployment.state == "Failed"
    assert deployment.reason == "ReadinessProbeFailed"
    assert "within 2 s" in deployment.message
    assert instance_pids(local) == []


def test_a_failed_update_leaves_the_old_instances_serving(local: Path) -> None:
    deployment = settle(make_deployment(env={"VERSION": "1"}))
    [old] = ready_addresses(deployment)
    services.deployment_update(deployment=deployment, changes={"environment_variables": {"FAIL_INIT": "v2 is broken"}})
    deployment = settle(deployment)
    assert deployment.state == "Failed" and deployment.reason == "UserScriptInitFailed"
    assert ready_addresses(deployment) == [old]
    assert score(old, {}).json()["version"] == "1"
    reconcile.reconcile(deployment.pk)
    assert ready_addresses(deployment) == [old]
    # Fixing the spec rolls out and retires both the old and the failed instance.
    services.deployment_update(deployment=deployment, changes={"environment_variables": {"VERSION": "3"}})
    deployment = settle(deployment)
    assert deployment.state == "Succeeded"
    [new] = ready_addresses(deployment)
    assert score(new, {}).json()["version"] == "3"
    assert Instance.objects.filter(deployment=deployment).count() == 1
    assert len(instance_pids(local)) == 1


def test_a_custom_exception_in_init_is_named_in_the_message(local: Path) -> None:
    endpoint = factories.endpoint("ep1")
    script = (
        "class ModelMissing(Exception):\n    pass\n\n"
        "def init():\n    raise ModelMissing('no weights.bin')\n\n"
        "def run(raw):\n    return raw\n"
    )
    code = factories.upload_folder({"score.py": script})
    deployment = settle(factories.deployment(endpoint, "blue", code=code))
    assert deployment.reason == "UserScriptInitFailed"
    first_line = deployment.message.splitlines()[0]
    assert first_line.startswith("the scoring script's init() raised: ")
    assert first_line.endswith("ModelMissing: no weights.bin")


def test_a_script_without_run_says_so(local: Path) -> None:
    endpoint = factories.endpoint("ep1")
    code = factories.upload_folder({"score.py": "def init():\n    pass\n"})
    deployment = settle(factories.deployment(endpoint, "blue", code=code))
    assert deployment.reason == "UserScriptInitFailed"
    first_line = deployment.message.splitlines()[0]
    assert first_line.startswith("the scoring script could not be loaded: User script at ")
    assert first_line.endswith("does not have a run() function defined.")

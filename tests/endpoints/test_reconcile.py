"""The reconcile loop's guarantees: quiet when the row is gone, one worker per deployment, compare-and-set
states, transient backend errors retried (not turned into Failed), and the periodic beat task (run here
with Celery's eager mode, so the tasks it queues run at once, in order).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.endpoints import reconcile, services, tasks
from apps.endpoints.backends import get_backend
from apps.endpoints.backends.kubernetes import KubernetesBackend, KubernetesUnavailable
from apps.endpoints.backends.local import LocalBackend
from apps.endpoints.models import Deployment, Endpoint, Instance
from studio.celery import app as celery_app
from tests import factories
from tests.endpoints.conftest import SCORE_PY, instance_pids, score

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager() -> Iterator[None]:
    """Tasks queued by the beat task run at once in this process, as a worker would run them."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def new_deployment(name: str = "blue") -> Deployment:
    endpoint = Endpoint.objects.filter(name="ep1").first() or factories.endpoint("ep1")
    return factories.deployment(endpoint, name, code=factories.upload_folder({"score.py": SCORE_PY}))


def test_a_deployment_that_is_gone_is_left_quietly(local: Path) -> None:
    assert reconcile.reconcile(987654) is None
    assert reconcile.delete(987654) is True
    assert tasks.reconcile_deployment.apply(args=(987654,)).get() is None
    tasks.delete_deployment.apply(args=(987654,)).get()


def test_a_second_worker_leaves_a_deployment_alone_while_the_first_holds_it(local: Path) -> None:
    deployment = new_deployment()
    with reconcile.deployment_lock(deployment.pk) as held:
        assert held
        with reconcile.deployment_lock(deployment.pk) as second:
            assert not second
        assert reconcile.reconcile(deployment.pk) is None
        assert instance_pids(local) == []
        assert not reconcile.delete(deployment.pk)
        assert Deployment.objects.filter(pk=deployment.pk).exists()
    deployment.refresh_from_db()
    assert deployment.state == "Creating"
    assert list(deployment.events.values_list("reason", flat=True)) == ["Creating"]
    # Released: the next pass does the work.
    assert reconcile.reconcile(deployment.pk) == "Succeeded"


def test_a_state_change_read_before_a_spec_change_is_refused(local: Path) -> None:
    deployment = new_deployment()
    stale = Deployment.objects.get(pk=deployment.pk)
    services.deployment_scale(deployment=deployment, instance_count=2, reason="test")
    assert not reconcile._transition(stale, new="Succeeded")
    deployment.refresh_from_db()
    assert deployment.state == "Scaling"
    assert "Succeeded" not in deployment.events.values_list("reason", flat=True)


def test_a_spec_changed_before_the_task_ran_is_rolled_out_in_that_pass(local: Path) -> None:
    deployment = new_deployment()
    services.deployment_scale(deployment=deployment, instance_count=2, reason="test")
    assert reconcile.reconcile(deployment.pk) == "Succeeded"
    deployment.refresh_from_db()
    assert deployment.observed_generation == deployment.generation == 2
    assert deployment.ready_instances == 2


def test_get_backend_follows_the_setting(settings: Any) -> None:
    settings.STUDIO_BACKEND = "local"
    assert isinstance(get_backend(), LocalBackend)
    assert isinstance(get_backend("managed"), LocalBackend)
    settings.STUDIO_BACKEND = "kubernetes"
    assert isinstance(get_backend(), KubernetesBackend)
    assert isinstance(get_backend("local"), LocalBackend)


def test_an_unreachable_kubernetes_api_is_retried_and_never_fails_the_deployment(settings: Any, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        "clusters: [{name: dead, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: dead, context: {cluster: dead, user: nobody}}]\n"
        "users: [{name: nobody, user: {token: x}}]\n"
    )
    settings.STUDIO_BACKEND = "kubernetes"
    settings.STUDIO_KUBECONFIG = str(kubeconfig)
    deployment = new_deployment()
    assert tasks.transient(KubernetesUnavailable("API down"))
    assert not tasks.transient(ValueError("a bug"))
    delays = [tasks.backoff_s(retries) for retries in (0, 0, 0, 0, 3, 3, 3, 20, 20)]
    assert all(0 <= delay <= 2 for delay in delays[:4]) and all(0 <= delay <= 16 for delay in delays[4:7])
    assert max(delays[7:]) <= 60 and len(set(delays)) == len(delays)  # jittered
    result = tasks.reconcile_deployment.apply(args=(deployment.pk,))
    assert result.state == "FAILURE"  # after its retries (eager apply runs them at once)
    assert isinstance(result.result, KubernetesUnavailable)
    assert "unreachable" in str(result.result)
    deployment.refresh_from_db()
    assert deployment.state == "Creating"
    assert deployment.reason == ""


def test_the_periodic_task_restarts_a_killed_instance(local: Path, eager: None) -> None:
    deployment = new_deployment()
    assert reconcile.reconcile(deployment.pk) == "Succeeded"
    [pid] = instance_pids(local)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        tasks.observe_deployments()
        row = Instance.objects.get(deployment=deployment)
        if row.ready and row.pid != pid:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert score(row.address, {"x": 1}).status_code == 200


def test_the_periodic_task_finishes_a_delete_that_a_lost_task_left(local: Path, eager: None) -> None:
    deployment = new_deployment()
    assert reconcile.reconcile(deployment.pk) == "Succeeded"
    services.deployment_delete(deployment=deployment)
    tasks.observe_deployments()
    assert not Deployment.objects.filter(pk=deployment.pk).exists()
    assert Endpoint.objects.filter(name="ep1").exists()  # not being deleted: the endpoint stays
    assert instance_pids(local) == []


def test_the_beat_schedule_runs_the_periodic_task_every_few_seconds(settings: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["observe-deployments"]
    assert entry["task"] == tasks.observe_deployments.name
    assert 1 <= entry["schedule"] <= 3


def test_the_periodic_task_applies_a_spec_whose_reconcile_task_was_lost(local: Path, eager: None) -> None:
    deployment = new_deployment()  # created, but its reconcile task never ran (a worker killed before it)
    tasks.observe_deployments()
    deployment.refresh_from_db()
    assert deployment.state == "Succeeded"
    assert deployment.observed_generation == deployment.generation
    assert len(instance_pids(local)) == 1


def test_an_observation_leaves_a_spec_not_yet_applied_to_the_reconcile_task(local: Path) -> None:
    deployment = new_deployment()
    assert reconcile.observe(deployment.pk) is None
    deployment.refresh_from_db()
    assert deployment.state == "Creating" and deployment.observed_generation == 0
    assert instance_pids(local) == []


def test_a_periodic_pass_does_not_wait_out_a_slow_restart(local: Path, tmp_path: Path) -> None:
    sleep_file = tmp_path / "sleep"
    endpoint = factories.endpoint("ep1")
    code = factories.upload_folder({"score.py": SCORE_PY})
    deployment = factories.deployment(
        endpoint, "blue", code=code, environment_variables={"INIT_SLEEP_FILE": str(sleep_file)}
    )
    assert reconcile.reconcile(deployment.pk) == "Succeeded"
    [pid] = instance_pids(local)
    sleep_file.write_text("30")  # the restarted instance takes 30 s in init()
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    reconcile.observe(deployment.pk)
    row = Instance.objects.get(deployment=deployment)
    # The pass came back with the restart still starting; the next passes follow it.
    assert row.state == "Starting" and not row.ready
    assert row.pid != pid and instance_pids(local) == [row.pid]


@pytest.mark.parametrize(
    ("row", "busy", "work"),
    [
        ((1, "Succeeded", 3, 3), set(), [("observe", 1)]),
        ((1, "Failed", 3, 3), set(), [("observe", 1)]),
        ((1, "Creating", 1, 0), set(), [("reconcile", 1)]),
        ((1, "Updating", 4, 3), set(), [("reconcile", 1)]),
        ((1, "Deleting", 2, 2), set(), [("delete", 1)]),
        ((1, "Succeeded", 3, 3), {1}, []),
        ((1, "Deleting", 2, 2), {1}, []),
    ],
    ids=["applied", "failed", "created", "updated", "deleting", "busy", "busy-deleting"],
)
def test_periodic_work_names_one_task_per_deployment_that_is_not_busy(
    row: tuple[int, str, int, int], busy: set[int], work: list[tuple[str, int]]
) -> None:
    assert reconcile.periodic_work_for([row], busy) == work

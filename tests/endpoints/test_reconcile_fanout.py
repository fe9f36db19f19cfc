"""The periodic observation fans out: one task per deployment, never two queued for one, and a deployment
that is stuck (a cluster that stopped answering) does not hold up the supervision of the others.

The tasks go through a real broker (the run's Redis) to a queue of the test's own, and the behavioural
test runs them in a real Celery worker (threads, in this process) against real instance processes.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, _state
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connection
from django.db.models import F

from apps.core.keys import redis_key
from apps.core.notify import redis_client
from apps.endpoints import reconcile, tasks
from apps.endpoints.models import Deployment, Endpoint, Instance
from tests import factories
from tests.endpoints.conftest import SCORE_PY, instance_pids

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def test_queue() -> Iterator[Celery]:
    """A Celery app with the studio's settings whose tasks go to a queue only this test reads."""
    app = Celery("studio-test", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.task_default_queue = f"studio-test-{uuid.uuid4().hex}"
    app.conf.task_always_eager = False
    app.conf.worker_hijack_root_logger = False
    app.finalize()
    previous_default, previous_current = _state.default_app, _state.get_current_app()
    app.set_default()
    app.set_current()
    yield app
    for pk in Deployment.objects.values_list("pk", flat=True):
        reconcile.release_queued(pk)  # the run's next tests may reuse these ids
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        channel.queue_purge(app.conf.task_default_queue)
        channel.queue_delete(app.conf.task_default_queue)
    _state.set_default_app(previous_default)
    previous_current.set_current()


def purge(app: Celery) -> None:
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(app.conf.task_default_queue)


def queued(app: Celery) -> int:
    with app.connection_for_read() as conn:
        # Not passive: kombu's passive declare asks EXISTS, the one command its global_keyprefix leaves unprefixed.
        return int(conn.default_channel.queue_declare(queue=app.conf.task_default_queue).message_count)


def local_deployment(name: str) -> Deployment:
    endpoint = Endpoint.objects.filter(name="ep1").first() or factories.endpoint("ep1")
    return factories.deployment(endpoint, name, code=factories.upload_folder({"score.py": SCORE_PY}))


def applied(deployment: Deployment) -> Deployment:
    """A deployment whose spec a reconcile pass applied (so the periodic pass observes it)."""
    Deployment.objects.filter(pk=deployment.pk).update(observed_generation=F("generation"), state="Succeeded")
    deployment.refresh_from_db()
    return deployment


# --- through the broker ---


def test_passes_queue_one_task_per_deployment_however_many_run_before_a_worker_takes_them(
    test_queue: Celery,
) -> None:
    first, second, third = (applied(local_deployment(name)) for name in ("blue", "green", "red"))
    Deployment.objects.filter(pk=third.pk).update(state="Deleting")
    created = queued(test_queue)  # each create queued its reconcile task
    for _ in range(5):
        tasks.observe_deployments()
    assert queued(test_queue) == created + 3

    with reconcile.deployment_lock(first.pk) as held:
        assert held
        reconcile.release_queued(first.pk)
        reconcile.release_queued(second.pk)  # as if its queued observation had run
        assert tasks.observe_deployments() == 1  # only `second`: `first` is held by a worker
    assert queued(test_queue) == created + 4


def test_a_task_that_ran_lets_the_next_pass_queue_its_deployment_again(test_queue: Celery) -> None:
    deployment = applied(local_deployment("blue"))
    assert tasks.observe_deployments() == 1
    assert tasks.observe_deployments() == 0
    with reconcile.deployment_lock(deployment.pk):
        assert tasks.observe_deployment(deployment.pk) is None  # a worker ran it and found the deployment busy
    assert tasks.observe_deployments() == 1


def test_settled_deployments_are_queued_as_one_chunk_that_lets_them_be_queued_again_once_it_ran(
    test_queue: Celery, settings: Any
) -> None:
    settings.STUDIO_OBSERVE_CHUNK = 50
    pks = [applied(local_deployment(name)).pk for name in ("blue", "green", "red")]
    Deployment.objects.filter(pk__in=pks).update(ready_instances=1)  # settled: every instance ready
    created = queued(test_queue)

    assert tasks.observe_deployments() == 3
    assert queued(test_queue) == created + 1  # one task observes the three
    assert tasks.observe_deployments() == 0
    with reconcile.deployment_locks(pks) as locks:
        assert locks.held == frozenset(pks)
        assert tasks.observe_deployment_chunk(pks) == 0  # a worker ran it and found them all busy
    assert tasks.observe_deployments() == 3


# --- in a real worker ---


class HungApiServer:
    """A Kubernetes API server that accepts connections and says nothing until released."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0
        self._held: list[socket.socket] = []
        self._released = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            if self._released.is_set():
                self._answer(client)
            else:
                self._held.append(client)

    @staticmethod
    def _answer(client: socket.socket) -> None:
        try:
            client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass
        client.close()

    def release(self) -> None:
        self._released.set()
        for client in self._held:
            self._answer(client)

    def close(self) -> None:
        self.release()
        self._listener.close()
        self._thread.join(timeout=5)


@pytest.fixture
def hung_cluster(settings: Any, tmp_path: Path) -> Iterator[HungApiServer]:
    server = HungApiServer()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: hung\n"
        f"clusters: [{{name: hung, cluster: {{server: '{server.url}'}}}}]\n"
        "contexts: [{name: hung, context: {cluster: hung, user: nobody}}]\n"
        "users: [{name: nobody, user: {token: x}}]\n"
    )
    settings.STUDIO_KUBECONFIG = str(kubeconfig)
    settings.STUDIO_KUBE_CONTEXT = ""
    yield server
    server.close()


def _close_thread_connection(**_: object) -> None:
    connection.close()  # each worker thread's own database connection, closed once its task is done


def test_a_stuck_deployment_does_not_delay_the_restart_of_a_killed_instance_elsewhere(
    test_queue: Celery, local: Path, hung_cluster: HungApiServer
) -> None:
    stuck = applied(factories.deployment(factories.endpoint("ep-k8s"), "blue", type="kubernetes"))
    healthy = local_deployment("green")
    assert reconcile.reconcile(healthy.pk) == "Succeeded"
    [pid] = instance_pids(local)
    os.kill(pid, signal.SIGKILL)
    purge(test_queue)  # the creates' own reconcile tasks: only what the periodic passes queue runs below

    task_postrun.connect(_close_thread_connection, weak=False)
    try:
        with start_worker(test_queue, pool="threads", concurrency=3, perform_ping_check=False, shutdown_timeout=60):
            deadline = time.monotonic() + 60
            while True:
                tasks.observe_deployments()  # as beat does every couple of seconds
                row = Instance.objects.get(deployment=healthy)
                if row.ready and row.pid != pid:
                    break
                assert time.monotonic() < deadline, f"not restarted: {row.state}"
                time.sleep(0.5)
            # Meanwhile the stuck deployment's observation holds its lock, waiting for the cluster, and no
            # pass queued a second one behind it.
            assert redis_client().exists(redis_key(f"deployment:{stuck.pk}:lock"))
            while hung_cluster.connections == 0:
                assert time.monotonic() < deadline, "the stuck deployment was never observed"
                tasks.observe_deployments()
                time.sleep(0.2)
            for _ in range(5):
                tasks.observe_deployments()
            time.sleep(0.5)
            assert hung_cluster.connections == 1
            hung_cluster.release()
            while redis_client().exists(redis_key(f"deployment:{stuck.pk}:lock")):
                assert time.monotonic() < deadline + 60, "the stuck observation never ended"
                time.sleep(0.2)
    finally:
        task_postrun.disconnect(_close_thread_connection)
    assert row.restarts == 1
    assert {"InstanceCrashed", "InstanceRestarted"} <= set(healthy.events.values_list("reason", flat=True))

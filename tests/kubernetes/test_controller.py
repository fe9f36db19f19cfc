"""The controller: leader election on a real Lease of the fake API server, watches that report what changed,
and the queueing and routing they lead to. Real threads, real HTTP, real database and Redis; each test stops
what it started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from apps.core.notify import ROUTING_VERSION_KEY, redis_client
from apps.endpoints import reconcile
from apps.endpoints.backends.controller import LEASE_NAME, Controller, Enqueuer, lease_decision, slice_readiness
from apps.endpoints.backends.kubernetes import ClusterClient, KubernetesBackend
from apps.endpoints.backends.manifests import object_name
from apps.endpoints.models import Instance
from apps.endpoints.specs import deployment_spec
from tests import factories
from tests.kubernetes.fakeapi import FakeCluster
from tests.kubernetes.specs import make_spec
from tests.kubernetes.test_backend import NAME, event, run_pod

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WAIT_S = 20.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Running:
    """A controller on its own thread, stopped (with or without handing the Lease over) by the test."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.stop_event = threading.Event()
        self.ever_led = False
        controller.on_leading = self._leading
        self.thread = threading.Thread(target=self._run, name=f"controller-{controller.identity}", daemon=True)
        self.thread.start()

    def _leading(self, leading: bool) -> None:
        self.ever_led = self.ever_led or leading

    def _run(self) -> None:
        self.controller.run(self.stop_event)

    def stop(self, *, release: bool = True) -> None:
        self.controller.release_on_stop = release
        self.stop_event.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


@pytest.fixture
def running(backend: KubernetesBackend) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(identity: str, **changes: Any) -> Running:
        controller = Controller(
            cluster=ClusterClient(api_client=backend.api_client, namespace="studio"),
            on_change=changes.pop("on_change", lambda uid: None),
            identity=identity,
            lease_s=2,
            watch_timeout_s=1,
            **changes,
        )
        started.append(Running(controller))
        return started[-1]

    yield start
    for item in started:
        if item.thread.is_alive():
            item.stop()


# --- the pure decision ---


def test_a_missing_lease_is_created_for_the_candidate() -> None:
    decision = lease_decision(None, identity="a", duration_s=15, unchanged_for_s=0, now=NOW, namespace="ns")
    assert decision.action == "create"
    assert decision.lease["spec"]["holderIdentity"] == "a" and decision.lease["spec"]["leaseTransitions"] == 0


def test_the_holder_renews_and_a_fresh_lease_of_another_is_followed() -> None:
    lease = {"metadata": {"name": LEASE_NAME}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    renew = lease_decision(lease, identity="a", duration_s=15, unchanged_for_s=100, now=NOW, namespace="ns")
    follow = lease_decision(lease, identity="b", duration_s=15, unchanged_for_s=14, now=NOW, namespace="ns")
    assert renew.action == "renew" and renew.lease["spec"]["renewTime"].startswith("2026-01-01T12:00:00")
    assert follow.action == "follow"


def test_a_lease_unrenewed_for_its_duration_or_released_is_acquired() -> None:
    held = {"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 2}}
    released = {"spec": {"holderIdentity": "", "leaseDurationSeconds": 1}}
    expired = lease_decision(held, identity="b", duration_s=15, unchanged_for_s=15.5, now=NOW, namespace="ns")
    handed_over = lease_decision(released, identity="b", duration_s=15, unchanged_for_s=0, now=NOW, namespace="ns")
    assert expired.action == "acquire" and expired.lease["spec"]["leaseTransitions"] == 3
    assert handed_over.action == "acquire" and handed_over.lease["spec"]["holderIdentity"] == "b"


# --- leader election on the fake API server ---


def test_of_two_controllers_one_leads_and_the_other_takes_over_when_its_lease_expires(
    running: Callable[..., Running], cluster: FakeCluster
) -> None:
    first, second = running("first"), running("second")
    wait_until(lambda: first.controller.leading or second.controller.leading, "a leader")
    leader, follower = (first, second) if first.controller.leading else (second, first)
    time.sleep(1.0)  # a few election rounds: the follower must not lead while the leader renews
    assert not follower.ever_led and leader.controller.leading

    leader.stop(release=False)  # as if its node died: the Lease is not handed over
    assert cluster.get("Lease", LEASE_NAME)["spec"]["holderIdentity"] == leader.controller.identity
    wait_until(lambda: follower.controller.leading, "the follower to take over")

    lease = cluster.get("Lease", LEASE_NAME)
    assert lease["spec"]["holderIdentity"] == follower.controller.identity
    assert lease["spec"]["leaseTransitions"] == 1


def test_a_leader_that_stops_cleanly_hands_the_lease_over(
    running: Callable[..., Running], cluster: FakeCluster
) -> None:
    first = running("first")
    wait_until(lambda: first.controller.leading, "the first to lead")
    second = running("second")

    first.stop()

    assert cluster.get("Lease", LEASE_NAME)["spec"]["holderIdentity"] in ("", "second")
    wait_until(lambda: second.controller.leading, "the second to lead")


# --- watches ---


def test_the_leader_reports_changes_of_the_studios_deployments_pods_and_their_events(
    running: Callable[..., Running], backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    seen: list[str] = []
    controller = running("only", on_change=seen.append)
    wait_until(lambda: controller.controller.leading, "the controller to lead")
    uid = make_spec().uid

    backend.apply(make_spec())
    wait_until(lambda: uid in seen, "the Deployment's change")
    seen.clear()
    run_pod(cluster, f"{NAME}-a")
    wait_until(lambda: uid in seen, "the pod's change")
    seen.clear()
    event(cluster, f"{NAME}-a", "Unhealthy", "Readiness probe failed")
    wait_until(lambda: uid in seen, "the event's report")

    seen.clear()
    cluster.put(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "someone-elses", "namespace": "studio"}, "spec": {}}
    )
    event(cluster, "someone-elses", "Pulled", "pulled", type="Normal")
    time.sleep(1.0)
    assert seen == []


def test_a_follower_watches_nothing(running: Callable[..., Running], backend: KubernetesBackend) -> None:
    leader_seen: list[str] = []
    follower_seen: list[str] = []
    leader = running("leader", on_change=leader_seen.append)
    wait_until(lambda: leader.controller.leading, "the leader")
    running("follower", on_change=follower_seen.append)

    backend.apply(make_spec())

    wait_until(lambda: bool(leader_seen), "the leader's report")
    time.sleep(0.5)
    assert follower_seen == []


# --- what the reports lead to ---


@pytest.mark.django_db
def test_a_change_queues_one_observation_and_a_change_during_it_queues_another() -> None:
    deployment = factories.deployment(factories.endpoint("ep1"), "blue")
    sent: list[int] = []
    enqueuer = Enqueuer(send=sent.append)
    try:
        enqueuer.add(str(deployment.uid))
        enqueuer.add(str(deployment.uid))
        enqueuer.add("00000000-0000-4000-8000-000000000000")  # no such deployment: dropped
        assert enqueuer.flush() == [deployment.pk]

        enqueuer.add(str(deployment.uid))  # while the first is still queued
        assert enqueuer.flush() == []
        reconcile.release_queued(deployment.pk)  # the task ran
        assert enqueuer.flush() == [deployment.pk]
        assert sent == [deployment.pk, deployment.pk]
    finally:
        reconcile.release_queued(deployment.pk)


@pytest.mark.django_db
def test_an_endpoint_slice_that_marks_a_pod_terminating_takes_it_out_of_routing_at_once(
    django_capture_on_commit_callbacks: Any,
) -> None:
    """Finding 9: the gateway learned readiness only through the database, lagging by the sweep."""
    deployment = factories.deployment(factories.endpoint("ep1"), "blue")
    name = object_name(deployment_spec(deployment))
    for pod in ("a", "b"):
        Instance.objects.create(deployment=deployment, name=f"{name}-{pod}", ready=True, address="http://10.1.0.7:5001")
    endpoint_slice = {
        "endpoints": [
            {"targetRef": {"kind": "Pod", "name": f"{name}-a"}, "conditions": {"ready": True, "terminating": False}},
            {
                "targetRef": {"kind": "Pod", "name": f"{name}-b"},
                "conditions": {"ready": False, "serving": True, "terminating": True},
            },
        ]
    }
    before = int(redis_client().get(ROUTING_VERSION_KEY) or 0)

    with django_capture_on_commit_callbacks(execute=True):
        Enqueuer(send=lambda pk: None).readiness(str(deployment.uid), slice_readiness(endpoint_slice))

    assert dict(Instance.objects.filter(deployment=deployment).values_list("name", "ready")) == {
        f"{name}-a": True,
        f"{name}-b": False,
    }
    assert int(redis_client().get(ROUTING_VERSION_KEY) or 0) == before + 1


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_slice_change_reaches_the_routing_table_through_the_controller(
    running: Callable[..., Running], backend: KubernetesBackend, cluster: FakeCluster
) -> None:
    spec_row = factories.deployment(factories.endpoint("ep1"), "blue")
    spec = deployment_spec(spec_row)
    backend.apply(spec)
    name = object_name(spec)
    Instance.objects.create(deployment=spec_row, name=f"{name}-a", ready=True, address="http://10.1.0.7:5001")
    enqueuer = Enqueuer(send=lambda pk: None)
    controller = running("only", on_slice=enqueuer.readiness)
    wait_until(lambda: controller.controller.leading, "the controller to lead")

    service = cluster.get("Service", name)
    cluster.put(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-x7k2p", "namespace": "studio", "labels": service["metadata"]["labels"]},
            "addressType": "IPv4",
            "endpoints": [
                {
                    "addresses": ["10.1.0.7"],
                    "targetRef": {"kind": "Pod", "name": f"{name}-a"},
                    "conditions": {"ready": False, "serving": True, "terminating": True},
                }
            ],
        }
    )

    wait_until(lambda: not Instance.objects.get(name=f"{name}-a").ready, "the instance to leave routing")
    reconcile.release_queued(spec_row.pk)

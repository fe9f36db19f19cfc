"""Workers reconcile in parallel; the per-deployment lock makes each deployment's pass have one owner at a time.

Four worker processes start at the same moment; every one of the 300 deployments is delivered to two of them
(as when a deploy, the beat's pass and a retry hand the same deployment to different workers), each worker
taking its share in its own random order. The backend is a fake
that counts starts in Redis with a deliberate check-then-start race window: only the lock keeps a second worker
from starting an instance the first one is starting.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from typing import Any

from django.db import connections

from apps.core import broadcast
from apps.core.keys import redis_key
from apps.core.notify import redis_client
from apps.endpoints import reconcile
from apps.endpoints.backends.base import DeploymentSpec, InstanceStatus, Observed
from apps.endpoints.models import Deployment, Endpoint, Instance, ProvisioningState
from tests import factories

DEPLOYMENTS = 300
INSTANCES = 2
WORKERS = 4
STARTS = redis_key("test:starts")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class CountingBackend:
    """Starts an instance by counting it; what runs lives in Redis, shared by every worker process."""

    def __init__(self) -> None:
        self.redis = redis_client()

    def _running(self, spec: DeploymentSpec) -> str:
        return redis_key(f"test:running:{spec.uid}")

    def apply(self, spec: DeploymentSpec) -> Observed:
        running = {_text(name) for name in self.redis.smembers(self._running(spec))}
        time.sleep(0.002)  # a start takes time: a second owner would see nothing running and start it again
        for index in range(spec.instance_count):
            name = f"{spec.name}-{index}"
            if name not in running:
                self.redis.hincrby(STARTS, f"{spec.uid}/{name}", 1)
                self.redis.sadd(self._running(spec), name)
        return self.observe(spec)

    def supervise(self, spec: DeploymentSpec) -> Observed:
        return self.observe(spec)

    def observe(self, spec: DeploymentSpec) -> Observed:
        names = sorted(_text(name) for name in self.redis.smembers(self._running(spec)))
        return Observed(
            instances=tuple(
                InstanceStatus(
                    name=name, state="Ready", ready=True, address="http://127.0.0.1:9", generation=spec.generation
                )
                for name in names
            )
        )

    def delete(self, spec: DeploymentSpec) -> None:
        self.redis.delete(self._running(spec))

    def logs(self, spec: DeploymentSpec, **kwargs: Any) -> Any:
        raise NotImplementedError("not read in this test")

    def usage(self, spec: DeploymentSpec) -> Any:
        raise NotImplementedError("not read in this test")


def _worker(pks: list[int], seed: int, go: Any, done: Any) -> None:
    connections.close_all()  # a connection of its own, not the parent's
    # No page is open: pushing each state change to websockets is not what this test is about, and costs time.
    broadcast.send = lambda group, payload: None
    order = list(pks)
    random.Random(seed).shuffle(order)
    backend = CountingBackend()
    go.wait()
    for pk in order:
        reconcile.reconcile(pk, backend=backend)
    connections.close_all()
    done.put(seed)


def test_four_workers_reconciling_300_deployments_start_each_instance_exactly_once(transactional_db: None) -> None:
    template = factories.deployment(factories.endpoint("ep-0"), "blue")
    fields = {
        f.attname: getattr(template, f.attname)
        for f in Deployment._meta.concrete_fields
        if f.attname not in ("id", "uid", "endpoint_id", "name", "created_at", "updated_at")
    }
    fields.update(instance_count=INSTANCES, state=ProvisioningState.CREATING, generation=1, observed_generation=0)
    template.delete()
    endpoints = Endpoint.objects.bulk_create(Endpoint(name=f"par-{i:03d}") for i in range(DEPLOYMENTS))
    Deployment.objects.bulk_create(Deployment(endpoint=ep, name="blue", **fields) for ep in endpoints)
    pks = list(Deployment.objects.values_list("pk", flat=True))
    assert len(pks) == DEPLOYMENTS
    connections.close_all()

    context = multiprocessing.get_context("fork")
    go, done = context.Event(), context.Queue()
    shares: list[list[int]] = [[] for _ in range(WORKERS)]
    chooser = random.Random(7)
    for pk in pks:
        for index in chooser.sample(range(WORKERS), 2):
            shares[index].append(pk)
    workers = [context.Process(target=_worker, args=(shares[seed], seed, go, done)) for seed in range(WORKERS)]
    for process in workers:
        process.start()
    go.set()
    for process in workers:
        process.join(timeout=300)
        assert process.exitcode == 0, f"worker exited with {process.exitcode}"

    starts = {_text(key): int(count) for key, count in redis_client().hgetall(STARTS).items()}
    assert len(starts) == DEPLOYMENTS * INSTANCES
    assert {count for count in starts.values()} == {1}, sorted(k for k, c in starts.items() if c > 1)[:10]
    states = set(Deployment.objects.values_list("state", flat=True))
    assert states == {ProvisioningState.SUCCEEDED}
    assert Instance.objects.filter(ready=True).count() == DEPLOYMENTS * INSTANCES

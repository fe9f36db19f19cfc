"""The reconcile loop: make what runs match the deployment's desired spec, and record what happened.

Level-triggered and idempotent (STYLE.md 5): every pass re-reads the row, compares `generation`
with `observed_generation`, asks the backend to apply a new spec, supervise an applied one or only
observe one that failed for good, mirrors the instances into `Instance` rows (what the gateway
routes to) and moves the state by compare-and-set, one event per transition. A Redis lock per
deployment keeps two workers from acting on one deployment at once.

The periodic observation fans out: `periodic_work` picks, for every deployment that no worker holds
and no queued task already covers, the one task it needs (reconcile, observe or delete), and marks
it queued so that a slow deployment never piles up duplicates.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

import psutil
from django.conf import settings
from django.db import transaction

from apps.core.keys import redis_key
from apps.core.notify import redis_client, routing_changed
from apps.endpoints import announce
from apps.endpoints.backends import backend_kind, get_backend
from apps.endpoints.backends.base import Backend, BackendEvent, Observed
from apps.endpoints.events import event_record
from apps.endpoints.models import Deployment, DeploymentEvent, Endpoint, Instance, ProvisioningState
from apps.endpoints.signals import instances_capacity_changed
from apps.endpoints.specs import deployment_backend_kind, deployment_spec

logger = logging.getLogger(__name__)

# Reasons that another pass at the same generation cannot fix: the user has to change the spec.
TERMINAL_REASONS = frozenset(
    {
        "ImageBuildFailure",
        "ModelNotFound",
        "StorageInitializerFailed",
        "UserScriptImportError",
        "UserScriptInitFailed",
        "ReadinessProbeFailed",
        "OutOfQuota",
        "InvalidDeploymentSpec",
    }
)
IN_PROGRESS = (ProvisioningState.CREATING, ProvisioningState.UPDATING, ProvisioningState.SCALING)
# Instances that hold capacity (and accrue cost in apps.costs): a pod waiting for a node, or evicted, holds none.
BILLED_STATES = frozenset(
    {
        Instance.State.STARTING,
        Instance.State.READY,
        Instance.State.UNREADY,
        Instance.State.CRASH_LOOP,
        Instance.State.TERMINATING,
    }
)
COUNT_SUFFIX = re.compile(r" \(x(\d+)\)$")
# Set by the Kubernetes controller while it leads and watches; the periodic pass then leaves the deployments it
# watches to it, observing each only every STUDIO_KUBE_RESYNC_S.
CONTROLLER_KEY = "studio:kube-controller:leader"
LOCK_TTL_S = 30
Work = Literal["reconcile", "observe", "delete"]


class DeploymentBusy(Exception):
    """Another worker holds the deployment's lock; the task retries later."""


def _key(pk: int, what: str) -> str:
    return redis_key(f"deployment:{pk}:{what}")


def _holder_gone(value: bytes | str | None) -> bool:
    """Whether the lock's holder was a process of this machine that no longer runs (a killed worker)."""
    try:
        text = value.decode() if isinstance(value, bytes) else value or ""
        host, pid, created, _ = text.split(":", 3)
        if host != socket.gethostname():
            return False  # another machine's worker: its lock expires after LOCK_TTL_S unless renewed
        return not _alive(int(pid), float(created))
    except ValueError:
        return False


def _alive(pid: int, created: float) -> bool:
    try:
        return abs(psutil.Process(pid).create_time() - created) < 0.05
    except psutil.Error:
        return False


@contextmanager
def deployment_lock(pk: int) -> Iterator[bool]:
    """Hold the deployment's Redis lock while the body runs; yields False when another worker holds it.

    The lock names its holder (host, pid, create time): a lock whose holder on this machine is gone (a worker
    killed mid-pass) is taken over at once; any other expires after LOCK_TTL_S unless renewed, so a dead
    worker elsewhere never blocks the deployment for long; a thread renews it while a long build runs.
    """
    key = _key(pk, "lock")
    me = psutil.Process()
    token = f"{socket.gethostname()}:{me.pid}:{me.create_time()}:{uuid.uuid4().hex}"
    client = redis_client()
    if not client.set(key, token, nx=True, ex=LOCK_TTL_S):
        held_by = client.get(key)
        if not isinstance(held_by, bytes) or not _holder_gone(held_by):
            yield False
            return
        # Take it over only if it is still the dead holder's (two workers may see it at once).
        taken = client.eval(
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3])"
            " end",
            1,
            key,
            held_by,
            token,
            LOCK_TTL_S,
        )
        if not taken:
            yield False
            return
        logger.warning("deployment %s: took over the lock of a worker that is gone (%s)", pk, held_by)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LOCK_TTL_S / 3):
            try:
                if client.get(key) == token.encode():
                    client.expire(key, LOCK_TTL_S)
            except Exception:  # noqa: BLE001 (a missed renewal only shortens the lock)
                logger.warning("could not renew the lock of deployment %s", pk)

    heartbeat = threading.Thread(target=renew, name=f"lock-{pk}", daemon=True)
    heartbeat.start()
    try:
        yield True
    finally:
        stop.set()
        # Release only our own lock (it may have expired and been taken by another worker).
        client.eval(
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end", 1, key, token
        )


class TimelineReporter:
    """What the backend reports while it works: events onto the timeline, instances into rows."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def event(self, event: BackendEvent, duration_ms: int | None = None) -> None:
        """Write one backend event to the deployment's timeline."""
        event_record(
            deployment=self.deployment,
            reason=event.reason,
            message=event.message,
            type=event.type,
            instance=event.instance,
            container=event.container,
            duration_ms=duration_ms,
        )

    def observed(self, observed: Observed) -> None:
        """Mirror the instances now, so the gateway stops or starts routing before the backend goes on."""
        instances_sync(deployment=self.deployment, observed=observed)


def instances_sync(*, deployment: Deployment, observed: Observed) -> int:
    """Make the deployment's Instance rows match what the backend sees; returns the ready count."""
    now = datetime.now(UTC)
    changed = False
    with transaction.atomic():
        rows = {row.name: row for row in Instance.objects.select_for_update().filter(deployment=deployment)}
        seen = set()
        for status in observed.instances:
            seen.add(status.name)
            values = {
                "address": status.address,
                "state": status.state,
                "ready": status.ready,
                "generation": status.generation,
                "restarts": status.restarts,
                "pid": status.pid,
                "port": status.port,
                "started_at": status.started_at,
                "message": status.message[:2000],
            }
            row = rows.get(status.name)
            if row is None:
                Instance.objects.create(deployment=deployment, name=status.name, **values)
                if status.state in BILLED_STATES:
                    _capacity_changed(deployment, [status.name], holds=True, at=status.started_at or now)
                changed = changed or status.ready
                continue
            if row.ready != status.ready or row.address != status.address:
                changed = True
            if (row.state in BILLED_STATES) != (status.state in BILLED_STATES):
                _capacity_changed(deployment, [status.name], holds=status.state in BILLED_STATES, at=now)
            if any(getattr(row, field) != value for field, value in values.items()):
                for field, value in values.items():
                    setattr(row, field, value)
                row.save()
        gone = [name for name in rows if name not in seen]
        if gone:
            changed = changed or any(rows[name].ready for name in gone)
            Instance.objects.filter(deployment=deployment, name__in=gone).delete()
            _capacity_changed(deployment, gone, holds=False, at=now)
        ready = observed.ready_count
        Deployment.objects.filter(pk=deployment.pk).exclude(ready_instances=ready).update(ready_instances=ready)
        if changed:
            routing_changed(deployment.endpoint.name)
    return ready


def _capacity_changed(deployment: Deployment, instances: list[str], *, holds: bool, at: datetime) -> None:
    """Instances started holding capacity (scheduled and running) or stopped (evicted, failed, pending again, gone)."""
    instances_capacity_changed.send(
        sender=Instance, deployment=deployment, instances=instances, holds_capacity=holds, at=at
    )


def _transition(deployment: Deployment, *, new: str, reason: str = "", message: str = "", **extra: object) -> bool:
    """Compare-and-set the state from what this pass read; an event when it moved."""
    moved = Deployment.objects.filter(
        pk=deployment.pk, state=deployment.state, generation=deployment.generation
    ).update(state=new, reason=reason, message=message, **extra)
    if moved:
        kind = DeploymentEvent.Type.WARNING if new == ProvisioningState.FAILED else DeploymentEvent.Type.NORMAL
        text = f"{reason}: {message}" if reason else message
        event_record(deployment=deployment, reason=new, message=text, type=kind)
    return bool(moved)


def _load(pk: int) -> Deployment | None:
    return Deployment.objects.select_related("endpoint", "environment", "model").filter(pk=pk).first()


def reconcile(pk: int, *, backend: Backend | None = None) -> str | None:
    """One level-triggered pass over deployment `pk`; returns its state afterwards (None when gone or busy)."""
    deployment = _load(pk)
    if deployment is None or deployment.state == ProvisioningState.DELETING:
        return None
    with deployment_lock(pk) as held:
        if not held:
            return None
        # Another pass may have finished while we waited for the lock, or the spec changed again.
        for _ in range(5):
            deployment = _load(pk)
            if deployment is None or deployment.state == ProvisioningState.DELETING:
                return None
            _pass(deployment, backend=backend)
            latest = _load(pk)
            if latest is None or latest.generation == deployment.generation:
                return latest.state if latest else None
    return None


def observe(pk: int, *, backend: Backend | None = None) -> str | None:
    """The periodic pass over deployment `pk` at its applied spec (a new spec is the reconcile task's work).

    Returns the state afterwards; None when the deployment is gone, busy, or has a spec not yet applied.
    """
    deployment = _load(pk)
    if deployment is None or deployment.state == ProvisioningState.DELETING:
        return None
    with deployment_lock(pk) as held:
        if not held:
            return None
        deployment = _load(pk)
        if (
            deployment is None
            or deployment.state == ProvisioningState.DELETING
            or deployment.generation != deployment.observed_generation
        ):
            return None
        _pass(deployment, backend=backend)
        latest = _load(pk)
        return latest.state if latest else None


def _pass(deployment: Deployment, *, backend: Backend | None) -> None:
    reporter = TimelineReporter(deployment)
    backend = backend or get_backend(deployment_backend_kind(deployment), reporter=reporter)
    spec = deployment_spec(deployment)
    started = time.monotonic()
    if deployment.generation != deployment.observed_generation:
        observed = backend.apply(spec)
        Deployment.objects.filter(pk=deployment.pk, generation=deployment.generation).update(
            observed_generation=deployment.generation
        )
    elif deployment.state == ProvisioningState.FAILED and deployment.reason in TERMINAL_REASONS:
        observed = backend.observe(spec)  # only a new spec can fix it: nothing to restart
    else:
        observed = backend.supervise(spec)
    _record_backend_events(deployment, observed)
    ready = instances_sync(deployment=deployment, observed=observed)
    current = sum(1 for i in observed.instances if i.ready and i.generation == spec.generation)
    # The backend may know better how many instances should be ready (an HPA owns the count) and whether its own
    # rollout is done (Kubernetes: observedGeneration, updated and available replicas).
    target = observed.desired_instances if observed.desired_instances is not None else spec.instance_count
    if observed.failed_reason:
        if deployment.state != ProvisioningState.FAILED or deployment.reason != observed.failed_reason:
            _transition(
                deployment,
                new=ProvisioningState.FAILED,
                reason=observed.failed_reason,
                message=observed.failed_message,
            )
        return
    done = current >= target and observed.rollout_complete is not False
    if done and deployment.state != ProvisioningState.SUCCEEDED:
        if _transition(deployment, new=ProvisioningState.SUCCEEDED):
            elapsed = int((time.monotonic() - started) * 1000)
            event_record(
                deployment=deployment,
                reason="Ready",
                message=f"{ready} of {target} instances ready at generation {spec.generation}",
                duration_ms=elapsed,
            )


def _record_backend_events(deployment: Deployment, observed: Observed) -> None:
    """Events the backend did not report as they happened (Kubernetes pod events): one row per event, counted.

    The same event seen again with a higher count (a probe failing every 10 s) updates its row's "(xN)"
    rather than adding a row per increment.
    """
    for event in observed.events:
        text = f"{event.message} (x{event.count})" if event.count > 1 else event.message
        rows = DeploymentEvent.objects.filter(
            deployment=deployment,
            reason=event.reason,
            instance=event.instance,
            container=event.container,
            message__startswith=event.message,
        )
        existing = next((row for row in rows if _uncounted(row.message) == event.message), None)
        if existing is None:
            TimelineReporter(deployment).event(replace(event, message=text))
        elif _count(existing.message) < event.count:
            DeploymentEvent.objects.filter(pk=existing.pk).update(message=text)
            announce.deployment_changed(deployment.pk)


def _uncounted(message: str) -> str:
    return COUNT_SUFFIX.sub("", message)


def _count(message: str) -> int:
    found = COUNT_SUFFIX.search(message)
    return int(found.group(1)) if found else 1


def delete(pk: int, *, backend: Backend | None = None) -> bool:
    """Stop the deployment's instances, then remove its row (and its endpoint's, when that is being deleted)."""
    deployment = _load(pk)
    if deployment is None:
        return True
    with deployment_lock(pk) as held:
        if not held:
            return False
        deployment = _load(pk)
        if deployment is None:
            return True
        reporter = TimelineReporter(deployment)
        backend = backend or get_backend(deployment_backend_kind(deployment), reporter=reporter)
        backend.delete(deployment_spec(deployment))
        instances_sync(deployment=deployment, observed=Observed())
        endpoint_id = deployment.endpoint_id
        with transaction.atomic():
            deployment.delete()
            endpoint = Endpoint.objects.select_for_update().filter(pk=endpoint_id).first()
            if (
                endpoint is not None
                and endpoint.provisioning_state == ProvisioningState.DELETING
                and not endpoint.deployments.exists()
            ):
                endpoint.delete()
            routing_changed(deployment.endpoint.name)
    return True


def periodic_work_for(
    deployments: Iterable[tuple[int, str, int, int]], busy: set[int] | frozenset[int]
) -> list[tuple[Work, int]]:
    """What the periodic pass queues for each (pk, state, generation, observed_generation) not `busy`.

    A deployment being deleted gets its delete again (the first task may have been lost), one whose
    spec is not applied yet gets a reconcile, every other one an observation.
    """
    work: list[tuple[Work, int]] = []
    for pk, state, generation, observed_generation in deployments:
        if pk in busy:
            continue
        if state == ProvisioningState.DELETING:
            work.append(("delete", pk))
        elif generation != observed_generation:
            work.append(("reconcile", pk))
        else:
            work.append(("observe", pk))
    return work


def periodic_work(*, queued_ttl_s: float) -> list[tuple[Work, int]]:
    """The tasks the periodic pass should queue now, each marked queued for `queued_ttl_s` (or until it runs).

    Deployments whose lock a live worker holds, or whose last queued task has not run yet, are left out.
    """
    listed = Deployment.objects.values_list(
        "pk", "state", "generation", "observed_generation", "kind", "endpoint__compute"
    ).order_by("pk")
    rows = [(pk, state, generation, observed) for pk, state, generation, observed, _, _ in listed]
    if not rows:
        return []
    client = redis_client()
    locks = client.pipeline(transaction=False)
    for pk, *_ in rows:
        locks.get(_key(pk, "lock"))
    # A lock whose holder is gone does not count: the task queued now takes it over.
    locked = {pk for (pk, *_), held in zip(rows, locks.execute(), strict=True) if held and not _holder_gone(held)}
    planned = periodic_work_for(rows, locked)
    if client.exists(CONTROLLER_KEY):
        watched = {
            pk
            for pk, _, _, _, kind, compute in listed
            if backend_kind(deployment_type=kind, endpoint_compute=compute) == "kubernetes"
        }
        planned = _resync_only(client, planned, watched)
    claims = client.pipeline(transaction=False)
    for _, pk in planned:
        claims.set(_key(pk, "queued"), "1", nx=True, ex=max(1, int(queued_ttl_s)))
    return [item for item, claimed in zip(planned, claims.execute(), strict=True) if claimed]


def _resync_only(client: Any, planned: list[tuple[Work, int]], watched: set[int]) -> list[tuple[Work, int]]:
    """Observations of watched deployments only when their resync is due; their other work as planned."""
    due = [(work, pk) for work, pk in planned if work == "observe" and pk in watched]
    claims = client.pipeline(transaction=False)
    for _, pk in due:
        claims.set(_key(pk, "resync"), "1", nx=True, ex=settings.STUDIO_KUBE_RESYNC_S)
    claimed = {pk for (_, pk), won in zip(due, claims.execute(), strict=True) if won}
    return [(work, pk) for work, pk in planned if not (work == "observe" and pk in watched) or pk in claimed]


def controller_leading(ttl_s: float) -> None:
    """The Kubernetes controller leads and watches for the next `ttl_s` seconds (renewed while it does)."""
    redis_client().set(CONTROLLER_KEY, "1", ex=max(1, int(ttl_s)))


def controller_stepped_down() -> None:
    redis_client().delete(CONTROLLER_KEY)


def queue_claim(pk: int, ttl_s: float) -> bool:
    """Mark deployment `pk` queued (True) unless a queued task already covers it (False)."""
    return bool(redis_client().set(_key(pk, "queued"), "1", nx=True, ex=max(1, int(ttl_s))))


def release_queued(pk: int) -> None:
    """The deployment's queued task has run: the next periodic pass may queue another."""
    redis_client().delete(_key(pk, "queued"))

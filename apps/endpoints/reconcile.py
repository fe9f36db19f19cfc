"""The reconcile loop: make what runs match the deployment's desired spec, and record what happened.

Level-triggered and idempotent (STYLE.md 5): every pass re-reads the row, compares `generation`
with `observed_generation`, asks the backend to apply a new spec, supervise an applied one or only
observe one that failed for good, mirrors the instances into `Instance` rows (what the gateway
routes to) and moves the state by compare-and-set, one event per transition. A Redis lock per
deployment keeps two workers from acting on one deployment at once.

The periodic observation fans out: `periodic_work` picks, for every deployment that no worker holds
and no queued task already covers, the one task it needs (reconcile, observe or delete), and marks
it queued so that a slow deployment never piles up duplicates. Settled deployments are observed in
chunks (`observe_many`): a few queries for the chunk, and no write for a deployment that runs as its
rows say.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import psutil
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from apps.core.keys import redis_key
from apps.core.notify import redis_client, routing_changed
from apps.endpoints import announce
from apps.endpoints.backends import backend_kind, get_backend
from apps.endpoints.backends.base import Backend, BackendEvent, BackendUnavailable, InstanceStatus, Observed
from apps.endpoints.events import event_record
from apps.endpoints.models import Deployment, DeploymentEvent, Endpoint, Instance, InstanceType, ProvisioningState
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
# The locks of the deployments a chunk has observed are released together, within this long of their pass.
RELEASE_EVERY_S = 0.02
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


_TAKE_OVER = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) end"
)
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


class HeldLocks:
    """The deployment locks one pass holds under one token; each is released once its deployment is done."""

    def __init__(self, client: Any, token: str, held: set[int]) -> None:
        self._client = client
        self._token = token
        self._held = held
        self._mutex = threading.Lock()
        self._done: list[int] = []

    def __contains__(self, pk: object) -> bool:
        return pk in self._held

    def __bool__(self) -> bool:
        return bool(self._held)

    @property
    def held(self) -> frozenset[int]:
        with self._mutex:
            return frozenset(self._held)

    def renew(self) -> None:
        """Extend every lock still held (one round trip); a lock that expired and was taken is left to its holder."""
        pipe = self._client.pipeline(transaction=False)
        for pk in self.held:
            pipe.eval(_RENEW, 1, _key(pk, "lock"), self._token, LOCK_TTL_S)
        pipe.execute()

    def done(self, pk: int) -> None:
        """Deployment `pk`'s pass is over: its lock goes with the others done, within RELEASE_EVERY_S."""
        with self._mutex:
            self._done.append(pk)

    def flush(self) -> None:
        """Release the locks of the deployments done so far, in one round trip."""
        with self._mutex:
            done, self._done = self._done, []
        self.release(*done)

    def release(self, *pks: int) -> None:
        """Release these locks (only ours: one may have expired and been taken by another worker)."""
        with self._mutex:
            mine = [pk for pk in pks if pk in self._held]
            self._held.difference_update(mine)
        if mine:
            pipe = self._client.pipeline(transaction=False)
            for pk in mine:
                pipe.eval(_RELEASE, 1, _key(pk, "lock"), self._token)
            pipe.execute()


@contextmanager
def deployment_locks(pks: Iterable[int]) -> Iterator[HeldLocks]:
    """Take the Redis locks of these deployments that no live worker holds (one round trip); hold them while the
    body runs, and release those the body has not released already.

    A lock names its holder (host, pid, create time): a lock whose holder on this machine is gone (a worker
    killed mid-pass) is taken over at once; any other expires after LOCK_TTL_S unless renewed, so a dead
    worker elsewhere never blocks the deployment for long. One thread renews them while a long build runs and
    releases, within RELEASE_EVERY_S, those whose deployment the body said `done`.
    """
    wanted = list(dict.fromkeys(pks))
    me = psutil.Process()
    token = f"{socket.gethostname()}:{me.pid}:{me.create_time()}:{uuid.uuid4().hex}"
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    for pk in wanted:
        pipe.set(_key(pk, "lock"), token, nx=True, ex=LOCK_TTL_S)
    taken = pipe.execute()
    held = {pk for pk, won in zip(wanted, taken, strict=True) if won}
    refused = [pk for pk, won in zip(wanted, taken, strict=True) if not won]
    if refused:
        pipe = client.pipeline(transaction=False)
        for pk in refused:
            pipe.get(_key(pk, "lock"))
        for pk, holder in zip(refused, pipe.execute(), strict=True):
            # Take it over only if it is still the dead holder's (two workers may see it at once).
            if (
                isinstance(holder, bytes)
                and _holder_gone(holder)
                and client.eval(_TAKE_OVER, 1, _key(pk, "lock"), holder, token, LOCK_TTL_S)
            ):
                logger.warning("deployment %s: took over the lock of a worker that is gone (%s)", pk, holder)
                held.add(pk)
    locks = HeldLocks(client, token, held)
    stop = threading.Event()
    # Released from this thread, a done deployment's lock is not held while the pass is busy with a slow one.
    tick = RELEASE_EVERY_S if len(wanted) > 1 else LOCK_TTL_S / 3

    def tend() -> None:
        renewed = time.monotonic()
        while not stop.wait(tick):
            try:
                locks.flush()
                if time.monotonic() - renewed >= LOCK_TTL_S / 3:
                    locks.renew()
                    renewed = time.monotonic()
            except Exception:  # noqa: BLE001 (a missed renewal only shortens the locks; a release waits for the end)
                logger.warning("could not renew or release the locks of deployments %s", sorted(locks.held)[:10])

    tender = threading.Thread(target=tend, name=f"locks-{wanted[0] if wanted else 0}", daemon=True)
    if held:
        tender.start()
    try:
        yield locks
    finally:
        stop.set()
        locks.release(*locks.held)


@contextmanager
def deployment_lock(pk: int) -> Iterator[bool]:
    """Hold deployment `pk`'s Redis lock while the body runs; yields False when another worker holds it."""
    with deployment_locks([pk]) as locks:
        yield pk in locks


class TimelineReporter:
    """What the backend reports while it works: events onto the timeline, instances into rows."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.synced = False  # the instance rows were written during the pass (rows read before are stale)

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
        self.synced = True
        instances_sync(deployment=self.deployment, observed=observed)


def _values(status: InstanceStatus) -> dict[str, Any]:
    """The Instance row's fields as the backend reports them."""
    return {
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


def _in_step(deployment: Deployment, rows: Sequence[Instance], observed: Observed) -> bool:
    """Whether the rows (and the deployment's ready count) already say what the backend observed."""
    if deployment.ready_instances != observed.ready_count or len(rows) != len(observed.instances):
        return False
    by_name = {row.name: row for row in rows}
    for status in observed.instances:
        row = by_name.get(status.name)
        if row is None or any(getattr(row, field) != value for field, value in _values(status).items()):
            return False
    return True


def instances_sync(*, deployment: Deployment, observed: Observed, rows: Sequence[Instance] | None = None) -> int:
    """Make the deployment's Instance rows match what the backend sees; returns the ready count.

    `rows`, when given, are its Instance rows as read under its lock: if they already match, nothing is written.
    """
    if rows is not None and _in_step(deployment, rows, observed):
        return observed.ready_count
    now = datetime.now(UTC)
    changed = False
    with transaction.atomic():
        current = {row.name: row for row in Instance.objects.select_for_update().filter(deployment=deployment)}
        seen = set()
        new: list[Instance] = []
        for status in observed.instances:
            seen.add(status.name)
            values = _values(status)
            row = current.get(status.name)
            if row is None:
                new.append(Instance(deployment=deployment, name=status.name, **values))
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
        if new:
            Instance.objects.bulk_create(new)
            billed: dict[datetime, list[str]] = defaultdict(list)
            for row in new:
                if row.state in BILLED_STATES:
                    billed[row.started_at or now].append(row.name)
            for at, names in billed.items():
                _capacity_changed(deployment, names, holds=True, at=at)
        gone = [name for name in current if name not in seen]
        if gone:
            changed = changed or any(current[name].ready for name in gone)
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


def _loading() -> QuerySet[Deployment]:
    return Deployment.objects.select_related("endpoint", "environment", "model")


def _load(pk: int) -> Deployment | None:
    return _loading().filter(pk=pk).first()


def _state(pk: int) -> tuple[str, int] | None:
    """The deployment's state and generation now (None when gone): what a pass checks before and after."""
    return Deployment.objects.filter(pk=pk).values_list("state", "generation").first()


def reconcile(pk: int, *, backend: Backend | None = None) -> str | None:
    """One level-triggered pass over deployment `pk`; returns its state afterwards (None when gone or busy)."""
    now = _state(pk)
    if now is None or now[0] == ProvisioningState.DELETING:
        return None
    with deployment_lock(pk) as held:
        if not held:
            return None
        # Another pass may have finished while we waited for the lock, or the spec changed again.
        for _ in range(5):
            deployment = _load(pk)
            if deployment is None or deployment.state == ProvisioningState.DELETING:
                return None
            # At an applied spec the instances usually run as their rows say: read them, and write only a change.
            applied = deployment.generation == deployment.observed_generation
            _pass(deployment, backend=backend, instances=list(deployment.instances.all()) if applied else None)
            now = _state(pk)
            if now is None or now[1] == deployment.generation:
                return now[0] if now else None
    return None


def observe(pk: int, *, backend: Backend | None = None) -> str | None:
    """The periodic pass over deployment `pk` at its applied spec (a new spec is the reconcile task's work).

    Returns the state afterwards; None when the deployment is gone, busy, or has a spec not yet applied.
    """
    return observe_many([pk], backend=backend)[pk]


def observe_many(pks: Sequence[int], *, backend: Backend | None = None) -> dict[int, str | None]:
    """The periodic pass over these deployments at their applied specs, one after the other; each one's state after.

    Their locks are taken in one round trip and their rows read under them in a fixed number of queries; each lock
    is released within RELEASE_EVERY_S of its deployment's pass. A deployment whose backend reports what its rows
    already say costs no write, no event and no broadcast. One deployment's trouble (its backend unavailable, a
    bug) is logged and does not keep the others from being observed; the next pass tries it again.
    """
    states: dict[int, str | None] = dict.fromkeys(pks)
    with deployment_locks(pks) as locks:
        if not locks:
            return states
        held = sorted(locks.held)
        deployments = {row.pk: row for row in _loading().filter(pk__in=held)}
        instances: dict[int, list[Instance]] = defaultdict(list)
        for row in Instance.objects.filter(deployment_id__in=held):
            instances[row.deployment_id].append(row)
        names = {deployment.instance_type for deployment in deployments.values()}
        catalog = {row.name: row for row in InstanceType.objects.filter(name__in=names)}
        for pk in states:
            deployment = deployments.get(pk)
            try:
                if (
                    deployment is not None
                    and deployment.state != ProvisioningState.DELETING
                    and deployment.generation == deployment.observed_generation
                ):
                    states[pk] = _pass(deployment, backend=backend, instances=instances[pk], catalog=catalog)
            except SoftTimeLimitExceeded:
                raise  # the task's time is up: the rest waits for the next pass
            except BackendUnavailable as error:
                logger.warning("deployment %s not observed this round: %s", pk, error or type(error).__name__)
            except Exception:  # noqa: BLE001 (one deployment's bug must not starve the others of observation)
                logger.exception("deployment %s: the observation failed", pk)
            finally:
                locks.done(pk)
    return states


def _pass(
    deployment: Deployment,
    *,
    backend: Backend | None,
    instances: Sequence[Instance] | None = None,
    catalog: Mapping[str, InstanceType] | None = None,
) -> str | None:
    """Apply, supervise or observe the deployment and record the outcome; the state it is left in (None: unknown).

    `instances` are its Instance rows and `catalog` the instance types, when the caller read them already.
    """
    reporter = TimelineReporter(deployment)
    backend = backend or get_backend(deployment_backend_kind(deployment), reporter=reporter)
    spec = deployment_spec(deployment, catalog=catalog)
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
    rows = None if reporter.synced else instances  # the backend had them rewritten while it worked
    ready = instances_sync(deployment=deployment, observed=observed, rows=rows)
    current = sum(1 for i in observed.instances if i.ready and i.generation == spec.generation)
    # The backend may know better how many instances should be ready (an HPA owns the count) and whether its own
    # rollout is done (Kubernetes: observedGeneration, updated and available replicas).
    target = observed.desired_instances if observed.desired_instances is not None else spec.instance_count
    if observed.failed_reason:
        if deployment.state == ProvisioningState.FAILED and deployment.reason == observed.failed_reason:
            return deployment.state
        moved = _transition(
            deployment,
            new=ProvisioningState.FAILED,
            reason=observed.failed_reason,
            message=observed.failed_message,
        )
        return ProvisioningState.FAILED if moved else None
    done = current >= target and observed.rollout_complete is not False
    if not done or deployment.state == ProvisioningState.SUCCEEDED:
        return deployment.state
    if not _transition(deployment, new=ProvisioningState.SUCCEEDED):
        return None
    elapsed = int((time.monotonic() - started) * 1000)
    event_record(
        deployment=deployment,
        reason="Ready",
        message=f"{ready} of {target} instances ready at generation {spec.generation}",
        duration_ms=elapsed,
    )
    return ProvisioningState.SUCCEEDED


def _record_backend_events(deployment: Deployment, observed: Observed) -> None:
    """Events the backend did not report as they happened (Kubernetes pod events): one row per event, counted.

    The same event seen again with a higher count (a probe failing every 10 s) updates its row's "(xN)"
    rather than adding a row per increment. The rows they may match are read in one query.
    """
    if not observed.events:
        return
    known = list(
        DeploymentEvent.objects.filter(
            deployment=deployment, reason__in={event.reason for event in observed.events}
        ).only("pk", "reason", "instance", "container", "message")
    )
    for event in observed.events:
        text = f"{event.message} (x{event.count})" if event.count > 1 else event.message
        existing = next(
            (
                row
                for row in known
                if (row.reason, row.instance, row.container) == (event.reason, event.instance, event.container)
                and _uncounted(row.message) == event.message
            ),
            None,
        )
        if existing is None:
            known.append(
                event_record(
                    deployment=deployment,
                    reason=event.reason,
                    message=text,
                    type=event.type,
                    instance=event.instance,
                    container=event.container,
                )
            )
        elif _count(existing.message) < event.count:
            DeploymentEvent.objects.filter(pk=existing.pk).update(message=text)
            existing.message = text
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
    return _periodic(queued_ttl_s)[0]


def periodic_batches(*, queued_ttl_s: float, chunk: int) -> list[tuple[Work, list[int]]]:
    """The periodic pass's tasks as `periodic_work` picks them, the observations of settled deployments in chunks."""
    work, settled = _periodic(queued_ttl_s)
    return batch_work(work, settled, chunk=chunk)


def batch_work(
    work: Sequence[tuple[Work, int]], settled: Mapping[int, str], *, chunk: int
) -> list[tuple[Work, list[int]]]:
    """Observations of settled deployments (`settled`: pk → backend kind) in chunks of at most `chunk` of one kind;
    every other task alone.

    A settled deployment (Succeeded, every instance ready) is usually observed without a write: many of them make
    one task, read in a few queries. One that is starting, failing or short of instances may make its pass wait
    (a restart, a slow cluster): alone, it delays no other.
    """
    alone: list[tuple[Work, list[int]]] = []
    kinds: dict[str, list[int]] = defaultdict(list)
    for kind, pk in work:
        if kind == "observe" and pk in settled:
            kinds[settled[pk]].append(pk)
        else:
            alone.append((kind, [pk]))
    size = max(1, chunk)
    chunks: list[tuple[Work, list[int]]] = [
        ("observe", pks[start : start + size]) for pks in kinds.values() for start in range(0, len(pks), size)
    ]
    return chunks + alone


def _periodic(queued_ttl_s: float) -> tuple[list[tuple[Work, int]], dict[int, str]]:
    """The work `periodic_work` claims, and the settled deployments among it by backend kind."""
    listed = Deployment.objects.values_list(
        "pk",
        "state",
        "generation",
        "observed_generation",
        "kind",
        "endpoint__compute",
        "ready_instances",
        "instance_count",
    ).order_by("pk")
    rows = [(pk, state, generation, observed) for pk, state, generation, observed, *_ in listed]
    if not rows:
        return [], {}
    kinds = {
        pk: backend_kind(deployment_type=kind, endpoint_compute=compute) for pk, _, _, _, kind, compute, _, _ in listed
    }
    settled = {
        pk: kinds[pk]
        for pk, state, _, _, _, _, ready, count in listed
        if state == ProvisioningState.SUCCEEDED and ready >= count
    }
    client = redis_client()
    locks = client.pipeline(transaction=False)
    for pk, *_ in rows:
        locks.get(_key(pk, "lock"))
    # A lock whose holder is gone does not count: the task queued now takes it over.
    locked = {pk for (pk, *_), held in zip(rows, locks.execute(), strict=True) if held and not _holder_gone(held)}
    planned = periodic_work_for(rows, locked)
    if client.exists(CONTROLLER_KEY):
        watched = {pk for pk, kind in kinds.items() if kind == "kubernetes"}
        planned = _resync_only(client, planned, watched)
    claims = client.pipeline(transaction=False)
    for _, pk in planned:
        claims.set(_key(pk, "queued"), "1", nx=True, ex=max(1, int(queued_ttl_s)))
    claimed = [item for item, won in zip(planned, claims.execute(), strict=True) if won]
    return claimed, settled


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


def release_queued(*pks: int) -> None:
    """The deployments' queued task has run: the next periodic pass may queue another."""
    if pks:
        redis_client().delete(*(_key(pk, "queued") for pk in pks))

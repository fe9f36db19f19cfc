"""The Kubernetes controller: one process per studio, leader-elected, that watches instead of sweeping.

    python manage.py kube_controller

Every replica runs for a coordination.k8s.io Lease (`studio-controller` in the workloads' namespace); the one
holding it watches Deployments, Pods and EndpointSlices labelled `app.kubernetes.io/managed-by=studio`, and
the namespace's events, and for each change queues an observation of the deployment it belongs to (the
Celery task the periodic pass would queue, de-duplicated the same way). While it leads, the periodic pass
observes Kubernetes deployments only every STUDIO_KUBE_RESYNC_S. A leader that stops renewing loses the Lease
after its duration and another replica takes over; one that stops cleanly hands it over at once.

EndpointSlice changes also reach the routing table directly: an endpoint that turns not-ready or terminating
marks its instance not ready and bumps the routing version at once, so every gateway stops sending to a
draining pod within a second, with no Kubernetes client in the gateway.

Leader election follows client-go's rules: a Lease is expired when its holder has not renewed it within
`leaseDurationSeconds` as timed by this process's own clock (never by comparing clocks across machines).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from apps.core.notify import routing_changed
from apps.endpoints import reconcile, tasks
from apps.endpoints.backends.kubernetes import (
    ClusterClient,
    KubernetesForbidden,
    KubernetesUnavailable,
    LeaseConflict,
    WatchExpired,
)
from apps.endpoints.backends.manifests import MANAGED_BY_SELECTOR, OWNER_LABEL
from apps.endpoints.models import Deployment, Endpoint, Instance

logger = logging.getLogger(__name__)

LEASE_NAME = "studio-controller"
# What the controller watches, and with which label selector ("" = every object of the namespace).
WATCHED: tuple[tuple[str, str], ...] = (
    ("Deployment", MANAGED_BY_SELECTOR),
    ("Pod", MANAGED_BY_SELECTOR),
    ("EndpointSlice", MANAGED_BY_SELECTOR),
    ("Event", ""),  # events carry no labels: they are mapped to a deployment through the pod they regard
)

Action = Literal["create", "renew", "acquire", "follow"]


@dataclass(frozen=True)
class LeaseDecision:
    """What a candidate does with the Lease it read: write `lease` (create, renew, acquire) or follow."""

    action: Action
    lease: dict[str, Any] | None = None


def lease_decision(
    lease: dict[str, Any] | None,
    *,
    identity: str,
    duration_s: int,
    unchanged_for_s: float,
    now: datetime,
    namespace: str,
    name: str = LEASE_NAME,
) -> LeaseDecision:
    """Pure: the next step of leader election for `identity`, given the Lease as read.

    `unchanged_for_s` is how long this process has seen the Lease's holder and renewTime unchanged: the
    holder is gone when that exceeds the Lease's duration, whatever the clocks of the two machines say.
    """
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if lease is None:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "holderIdentity": identity,
                "leaseDurationSeconds": duration_s,
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        }
        return LeaseDecision("create", body)
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    if holder == identity:
        renewed = {**lease, "spec": {**spec, "renewTime": stamp, "leaseDurationSeconds": duration_s}}
        return LeaseDecision("renew", renewed)
    expired = unchanged_for_s > float(spec.get("leaseDurationSeconds") or duration_s)
    if not holder or expired:
        acquired = {
            **lease,
            "spec": {
                **spec,
                "holderIdentity": identity,
                "leaseDurationSeconds": duration_s,
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": int(spec.get("leaseTransitions") or 0) + 1,
            },
        }
        return LeaseDecision("acquire", acquired)
    return LeaseDecision("follow")


def deployment_uid_of(kind: str, obj: dict[str, Any], pods: dict[str, str]) -> str:
    """The studio deployment an object belongs to ("" when none): its label, or for an event, its pod's."""
    if kind == "Event":
        regarding = obj.get("regarding") or obj.get("involvedObject") or {}
        if regarding.get("kind") != "Pod":
            return ""
        return pods.get(str(regarding.get("name", "")), "")
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(OWNER_LABEL, ""))


def slice_readiness(endpoint_slice: dict[str, Any]) -> dict[str, bool]:
    """Pod name → whether the EndpointSlice says it may take traffic (ready, and not terminating)."""
    readiness = {}
    for endpoint in endpoint_slice.get("endpoints") or []:
        target = endpoint.get("targetRef") or {}
        if target.get("kind") != "Pod" or not target.get("name"):
            continue
        conditions = endpoint.get("conditions") or {}
        readiness[str(target["name"])] = bool(conditions.get("ready")) and not conditions.get("terminating")
    return readiness


@dataclass
class Controller:
    """Runs for the Lease and, while it holds it, watches and reports changes (`on_change(uid)`, `on_slice`)."""

    cluster: ClusterClient
    on_change: Callable[[str], None]
    on_slice: Callable[[str, dict[str, bool]], None] = lambda uid, readiness: None
    on_leading: Callable[[bool], None] = lambda leading: None
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    lease_namespace: str = ""
    lease_s: int = 15
    watch_timeout_s: int = 60
    leading: bool = False
    release_on_stop: bool = True  # False only to play a crash in tests: the Lease then expires on its own
    _seen: tuple[Any, ...] = ()
    _seen_at: float = 0.0
    _term: threading.Event | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _pods: dict[str, str] = field(default_factory=dict)

    @property
    def retry_s(self) -> float:
        return max(0.2, self.lease_s / 5)

    def run(self, stop: threading.Event) -> None:
        """Campaign and lead until `stop` is set; hand the Lease over on the way out unless `release_on_stop` is off."""
        namespace = self.lease_namespace or self.cluster.namespace
        try:
            while not stop.is_set():
                try:
                    leading = self.elect_once(namespace)
                except (KubernetesUnavailable, KubernetesForbidden) as error:
                    logger.warning("leader election: %s", error)
                    leading = False
                if leading and not self.leading:
                    logger.info("%s leads: watching namespace %s", self.identity, self.cluster.namespace)
                    self._start_watching()
                elif not leading and self.leading:
                    logger.info("%s no longer leads", self.identity)
                    self._stop_watching()
                self.leading = leading
                self.on_leading(leading)
                stop.wait(self.retry_s)
        finally:
            was_leading = self.leading
            if self._term is not None:
                self._term.set()  # watches stop reporting now; hand the Lease over before waiting for them
            self.leading = False
            if was_leading and self.release_on_stop:
                self._release(namespace)
            self.on_leading(False)
            self._stop_watching()

    def elect_once(self, namespace: str) -> bool:
        """Read the Lease and act on it once; True while this process holds it."""
        lease = self.cluster.lease_read(namespace, LEASE_NAME)
        spec = (lease or {}).get("spec") or {}
        seen = (spec.get("holderIdentity"), spec.get("renewTime"))
        now = time.monotonic()
        if seen != self._seen:
            self._seen, self._seen_at = seen, now
        decision = lease_decision(
            lease,
            identity=self.identity,
            duration_s=self.lease_s,
            unchanged_for_s=now - self._seen_at,
            now=datetime.now(UTC),
            namespace=namespace,
        )
        if decision.action == "follow" or decision.lease is None:
            return False
        try:
            written = self.cluster.lease_write(namespace, decision.lease)
        except LeaseConflict:
            return False  # another candidate wrote first; read again next round
        spec = written.get("spec") or {}
        self._seen, self._seen_at = (spec.get("holderIdentity"), spec.get("renewTime")), now
        return spec.get("holderIdentity") == self.identity

    def _release(self, namespace: str) -> None:
        try:
            lease = self.cluster.lease_read(namespace, LEASE_NAME)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
                self.cluster.lease_write(namespace, {**lease, "spec": spec})
        except (KubernetesUnavailable, KubernetesForbidden, LeaseConflict) as error:
            logger.warning("could not hand the Lease over (it expires on its own): %s", error)

    # --- watching ---

    def _start_watching(self) -> None:
        self._term = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch, args=(kind, selector, self._term), name=f"watch-{kind}", daemon=True)
            for kind, selector in WATCHED
        ]
        for thread in self._threads:
            thread.start()

    def _stop_watching(self) -> None:
        """Stop the watches: they report nothing more at once, and end with their stream (watch_timeout_s)."""
        if self._term is not None:
            self._term.set()
        for thread in self._threads:
            thread.join(timeout=self.watch_timeout_s + 15)
        self._threads, self._term = [], None

    def _watch(self, kind: str, selector: str, term: threading.Event) -> None:
        """List, then watch from the list's version; list again when the watch expires or breaks."""
        delay = 0.5
        while not term.is_set():
            try:
                items, version = self.cluster.list_for_watch(kind, label_selector=selector)
                for item in items:
                    self._seen_object(kind, "ADDED", item)
                while not term.is_set():
                    for change, obj in self.cluster.watch(
                        kind, resource_version=version, label_selector=selector, timeout_s=self.watch_timeout_s
                    ):
                        if term.is_set():
                            return  # no longer leading: report nothing more
                        version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                        if change != "BOOKMARK":
                            self._seen_object(kind, change, obj)
                delay = 0.5
            except WatchExpired:
                continue  # the history moved on: list again
            except (KubernetesUnavailable, KubernetesForbidden) as error:
                logger.warning("watch of %s: %s; again in %.1f s", kind, error, delay)
                term.wait(delay)
                delay = min(30.0, delay * 2)

    def _seen_object(self, kind: str, change: str, obj: dict[str, Any]) -> None:
        if kind == "Pod":
            name = str((obj.get("metadata") or {}).get("name", ""))
            if change == "DELETED":
                uid = self._pods.pop(name, "")
            else:
                uid = self._pods.setdefault(name, deployment_uid_of(kind, obj, self._pods))
        else:
            uid = deployment_uid_of(kind, obj, self._pods)
        if not uid:
            return
        if kind == "EndpointSlice" and change != "DELETED":
            self.on_slice(uid, slice_readiness(obj))
        self.on_change(uid)


class Enqueuer:
    """Turns reported changes into observation tasks: at most one queued per deployment, none lost.

    A change that arrives while the deployment's task is queued or running is kept and queued again once that
    task has finished (it may have read the cluster before the change), for up to `patience_s`.
    """

    def __init__(
        self,
        *,
        send: Callable[[int], None] | None = None,
        queued_ttl_s: float = tasks.QUEUED_TTL_S,
        patience_s: float = 30.0,
        lease_s: int = 15,
    ) -> None:
        self._send = send or (lambda pk: tasks.observe_deployment.apply_async(args=(pk,), expires=queued_ttl_s))
        self._ttl = queued_ttl_s
        self._patience = patience_s
        self._lease_s = lease_s
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, uid: str) -> None:
        with self._lock:
            self._pending.setdefault(uid, time.monotonic())

    def flush(self) -> list[int]:
        """Queue what is pending and may be queued now; returns the deployments queued."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return []
        pks = {str(uid): pk for uid, pk in Deployment.objects.filter(uid__in=list(pending)).values_list("uid", "pk")}
        queued, waiting = [], {}
        now = time.monotonic()
        for uid, since in pending.items():
            pk = pks.get(uid)
            if pk is None:
                continue  # not (or no longer) a deployment of this studio
            if reconcile.queue_claim(pk, self._ttl):
                self._send(pk)
                queued.append(pk)
            elif now - since < self._patience:
                waiting[uid] = since
        with self._lock:
            for uid, since in waiting.items():
                self._pending.setdefault(uid, since)
        return queued

    def readiness(self, uid: str, readiness: dict[str, bool]) -> None:
        """An EndpointSlice changed: instances that may no longer take traffic leave routing now, the others join."""
        changed = 0
        for pod, ready in readiness.items():
            changed += Instance.objects.filter(deployment__uid=uid, name=pod).exclude(ready=ready).update(ready=ready)
        if changed:
            routing_changed(Endpoint.objects.filter(deployments__uid=uid).values_list("name", flat=True))

    def leading(self, leading: bool) -> None:
        """Tell the periodic pass whether a leader watches (renewed every election round while it does)."""
        if leading:
            reconcile.controller_leading(ttl_s=2 * self._lease_s)
        else:
            reconcile.controller_stepped_down()

    def run(self, stop: threading.Event, interval_s: float = 0.2) -> None:
        while not stop.wait(interval_s):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 (a database or Redis hiccup must not stop the controller)
                logger.exception("could not queue observations; trying again")

"""The Kubernetes backend: per studio deployment a Secret, Deployment, Service (and PDB, HPA).

The only module that imports `kubernetes`. Objects are written with server-side apply (field manager
`studio`, forced), so applying twice is a no-op and fields other managers own (an HPA's replica count, a
mesh's sidecar) are left alone. Every object the studio writes or deletes must carry this deployment's
`studio.ml/deployment-uid` label, and every patch and delete names the live object's uid as a
precondition: the studio never touches an object it did not make, even one that took its name meanwhile.

Status comes from the objects that decide it (`observed_from`, a pure function): the Deployment's
observedGeneration, updated and available replicas and Progressing condition, the pods of the current
template only, and their events from events.k8s.io (series counted, not repeated). One API client per
process, created on first use after any fork; reads may be served from the API server's watch cache.

The controller (`controller.py`) watches through `ClusterClient.watch` and holds its Lease through
`ClusterClient.lease_*`; it imports no `kubernetes` itself.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import urllib3
from django.conf import settings
from kubernetes import client as k8s  # the one module allowed (with the controller): pyproject.toml's import contracts
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from apps.core.errors import ApplicationError, NotFound
from apps.endpoints.backends.base import (
    BackendEvent,
    BackendUnavailable,
    Container,
    DeploymentSpec,
    InstanceStatus,
    InstanceUsage,
    Observed,
)
from apps.endpoints.backends.manifests import (
    OWNER_LABEL,
    TEMPLATE_HASH_ANNOTATION,
    TOKEN_KEY,
    ManifestOptions,
    build_manifests,
    label_selector,
    object_name,
    options_from_settings,
    template_hash,
    uses_autoscaler,
)

logger = logging.getLogger(__name__)
Items = list[dict[str, Any]]

FIELD_MANAGER = "studio"
# Holds `spec.replicas` for a moment when a deployment switches to an HPA, so that dropping the field from the
# studio's apply leaves it in place (the documented hand-over) instead of the API server defaulting it to 1.
HANDOVER_MANAGER = "studio-handover-to-hpa"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
# (connect, read) seconds: a reconcile task must never hang on an unreachable cluster.
REQUEST_TIMEOUT = (5, 30)
IMAGE_PULL_REASONS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CONFIG_REASONS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
AUTOSCALER_REASONS = {"TriggeredScaleUp", "NotTriggerScaleUp", "FailedScaleUp"}
# An out-of-memory kill older than this, of a container that is ready again, is history, not a failure.
OOM_RECENT_S = 600
# 404: no metrics.k8s.io API registered; 503: registered, but metrics-server is not answering;
# 403: the studio's Role predates its permission to list PodMetrics.
NO_METRICS_API = (404, 503, 403)
# Apply and delete order: the Secret first (the pods read it at start), the autoscaler and budget last.
# In apply order; deleted in reverse (the NetworkPolicy outlives the pods it guards).
KINDS = ("Secret", "NetworkPolicy", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler")
# API servers already reported as having no metrics API, so the sampler says so once, not every 10 s.
_no_metrics_logged: set[str] = set()
# When this process last applied each deployment in full (supervise re-applies every STUDIO_KUBE_RESYNC_S).
_last_apply: dict[str, float] = {}
_clients: dict[tuple[int, str, str], k8s.ApiClient] = {}
_clients_lock = threading.Lock()


class KubernetesUnavailable(BackendUnavailable):
    """A transient failure (API unreachable, 5xx, 409, 429, objects still terminating): retry later."""


class KubernetesForbidden(Exception):
    """401/403: the studio may not do this in the namespace; retrying cannot help until RBAC changes."""


class WatchExpired(Exception):
    """410 Gone: the watch's resourceVersion is older than the API server keeps; list again."""


class LeaseConflict(Exception):
    """409: someone else created or updated the Lease first."""


def shared_api_client() -> k8s.ApiClient:
    """This process's API client for the configured cluster: one TLS session pool, one exec-plugin token.

    Keyed by the process id, so a client made before a fork (a Celery prefork parent) is never shared.
    """
    key = (os.getpid(), settings.STUDIO_KUBECONFIG, settings.STUDIO_KUBE_CONTEXT)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = _load_api_client()
        return _clients[key]


class ClusterClient:
    """Raw JSON calls in one namespace, reads from the API server cache; the backend and the controller share it."""

    def __init__(self, *, api_client: k8s.ApiClient | None = None, namespace: str | None = None) -> None:
        self._api_client = api_client
        self.namespace = namespace or settings.STUDIO_KUBE_NAMESPACE

    @property
    def api_client(self) -> k8s.ApiClient:
        if self._api_client is None:
            self._api_client = shared_api_client()
        return self._api_client

    def _api(self, kind: str) -> Any:
        group = {
            "Deployment": k8s.AppsV1Api,
            "HorizontalPodAutoscaler": k8s.AutoscalingV2Api,
            "PodDisruptionBudget": k8s.PolicyV1Api,
            "NetworkPolicy": k8s.NetworkingV1Api,
            "Lease": k8s.CoordinationV1Api,
            "EndpointSlice": k8s.DiscoveryV1Api,
            "Event": k8s.EventsV1Api,
        }.get(kind, k8s.CoreV1Api)
        return group(self.api_client)

    def _method(self, verb: str, kind: str) -> Callable[..., Any]:
        snake = {
            "Deployment": "deployment",
            "Service": "service",
            "Secret": "secret",
            "Pod": "pod",
            "HorizontalPodAutoscaler": "horizontal_pod_autoscaler",
            "PodDisruptionBudget": "pod_disruption_budget",
            "NetworkPolicy": "network_policy",
            "Lease": "lease",
            "EndpointSlice": "endpoint_slice",
            "Event": "event",
        }[kind]
        return getattr(self._api(kind), f"{verb}_namespaced_{snake}")

    def call(self, method: Callable[..., Any], *args: Any, raw: bool = True, **kwargs: Any) -> Any:
        """One API call (JSON dict back when `raw`); transport errors, 5xx, 409 and 429 are KubernetesUnavailable."""
        try:
            if raw:
                response = method(*args, _request_timeout=REQUEST_TIMEOUT, _preload_content=False, **kwargs)
                return json.loads(response.data or b"{}")
            return method(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except urllib3.exceptions.HTTPError as error:
            raise KubernetesUnavailable(f"Kubernetes API unreachable: {error}") from error
        except ApiException as error:
            if error.status in (401, 403):
                raise KubernetesForbidden(_status_message(error)) from error
            if error.status is None or error.status >= 500 or error.status in (409, 429):
                raise KubernetesUnavailable(_describe(error)) from error
            raise

    def read(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            return self.call(self._method("read", kind), name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise KubernetesUnavailable(_describe(error)) from error

    def list_items(self, kind: str, *, label_selector: str | None = None, field_selector: str | None = None) -> Items:
        """The items of a list served from the API server's watch cache (`resourceVersion=0`): no quorum read."""
        listed = self.call(
            self._method("list", kind),
            self.namespace,
            resource_version="0",
            label_selector=label_selector,
            field_selector=field_selector,
        )
        return list(listed.get("items") or [])

    def apply(self, manifest: dict[str, Any], *, manager: str = FIELD_MANAGER, force: bool = True) -> dict[str, Any]:
        return self.call(
            self._method("patch", manifest["kind"]),
            manifest["metadata"]["name"],
            self.namespace,
            manifest,
            field_manager=manager,
            force=force,
            _content_type=APPLY_CONTENT_TYPE,
        )

    def delete(self, kind: str, name: str, *, uid: str) -> None:
        """Delete with foreground propagation, only if the object is still the one with `uid`."""
        body = k8s.V1DeleteOptions(propagation_policy="Foreground", preconditions=k8s.V1Preconditions(uid=uid))
        try:
            self.call(self._method("delete", kind), name, self.namespace, body=body)
        except ApiException as error:
            if error.status != 404:
                raise KubernetesUnavailable(_describe(error)) from error
        except KubernetesUnavailable as error:
            cause = error.__cause__
            if isinstance(cause, ApiException) and cause.status == 409:
                logger.warning("%s %s/%s was replaced meanwhile; left alone", kind, self.namespace, name)
                return
            raise

    # --- the controller's watches and Lease ---

    def list_for_watch(self, kind: str, *, label_selector: str = "") -> tuple[Items, str]:
        """(items, resourceVersion to watch from)."""
        listed = self.call(self._method("list", kind), self.namespace, label_selector=label_selector or None)
        return listed.get("items") or [], str((listed.get("metadata") or {}).get("resourceVersion") or "")

    def watch(
        self, kind: str, *, resource_version: str, label_selector: str = "", timeout_s: int = 60
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, object) changes after `resource_version` until the server ends the stream; WatchExpired on 410."""
        try:
            response = self._method("list", kind)(
                self.namespace,
                watch=True,
                resource_version=resource_version,
                label_selector=label_selector or None,
                timeout_seconds=timeout_s,
                allow_watch_bookmarks=True,
                _preload_content=False,
                _request_timeout=(5, timeout_s + 10),
            )
        except ApiException as error:
            if error.status == 410:
                raise WatchExpired(_status_message(error)) from error
            if error.status in (401, 403):
                raise KubernetesForbidden(_status_message(error)) from error
            raise KubernetesUnavailable(_describe(error)) from error
        except urllib3.exceptions.HTTPError as error:
            raise KubernetesUnavailable(f"Kubernetes API unreachable: {error}") from error
        buffer = b""
        try:
            for chunk in response.stream(64 * 1024, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        if status.get("code") == 410:
                            raise WatchExpired(str(status.get("message", "")))
                        raise KubernetesUnavailable(f"watch of {kind} failed: {status.get('message', status)}")
                    yield str(event.get("type")), event.get("object") or {}
        except urllib3.exceptions.HTTPError as error:
            raise KubernetesUnavailable(f"watch of {kind} cut: {error}") from error
        finally:
            response.release_conn()

    def lease_read(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.call(self._api("Lease").read_namespaced_lease, name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise KubernetesUnavailable(_describe(error)) from error

    def lease_write(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any]:
        """Create the Lease (no resourceVersion) or replace it at its resourceVersion; LeaseConflict when beaten."""
        api = self._api("Lease")
        try:
            if lease["metadata"].get("resourceVersion"):
                return self.call(api.replace_namespaced_lease, lease["metadata"]["name"], namespace, lease)
            return self.call(api.create_namespaced_lease, namespace, lease)
        except KubernetesUnavailable as error:
            cause = error.__cause__
            if isinstance(cause, ApiException) and cause.status == 409:
                raise LeaseConflict(_status_message(cause)) from error
            raise


class KubernetesBackend:
    """Runs deployments as Kubernetes objects in one namespace, through the official client."""

    def __init__(
        self,
        *,
        api_client: k8s.ApiClient | None = None,
        namespace: str | None = None,
        options: Callable[[DeploymentSpec, str], ManifestOptions] | None = None,
    ) -> None:
        self.cluster = ClusterClient(api_client=api_client, namespace=namespace)
        self._options = options or (lambda spec, previous: options_from_settings(spec, previous_token=previous))

    @property
    def namespace(self) -> str:
        return self.cluster.namespace

    @namespace.setter
    def namespace(self, value: str) -> None:
        self.cluster.namespace = value

    @property
    def api_client(self) -> k8s.ApiClient:
        return self.cluster.api_client

    # --- the Backend protocol ---

    def apply(self, spec: DeploymentSpec) -> Observed:
        """Server-side apply every object the spec needs, drop the ones it no longer needs; report."""
        try:
            return self._apply(spec)
        except KubernetesForbidden as error:
            return _forbidden(self.namespace, error)
        except ApiException as error:
            failure = _apply_failure(error, namespace=self.namespace)
            if failure is None:
                raise KubernetesUnavailable(_describe(error)) from error
            return failure

    def _options_for(self, spec: DeploymentSpec, previous: str) -> ManifestOptions:
        return replace(self._options(spec, previous), namespace=self.namespace)

    def _apply(self, spec: DeploymentSpec) -> Observed:
        name = object_name(spec)
        try:
            build_manifests(spec, self._options_for(spec, ""))  # a spec the builders reject never reaches the cluster
        except ApplicationError as error:
            return Observed(failed_reason="InvalidDeploymentSpec", failed_message=error.message)
        live = {kind: self.cluster.read(kind, name) for kind in KINDS}
        deployment = live["Deployment"]
        if deployment is not None and deployment["metadata"].get("deletionTimestamp"):
            raise KubernetesUnavailable(f"Deployment {self.namespace}/{name} is still being deleted; retry when gone")
        foreign = [kind for kind, obj in live.items() if obj is not None and _owner(obj) != spec.uid]
        if foreign:
            kind = foreign[0]
            return Observed(
                failed_reason="InvalidDeploymentSpec",
                failed_message=f"{kind} {self.namespace}/{name} exists and is not this deployment's "
                f"(its {OWNER_LABEL} label is {_owner(live[kind])!r}); the studio leaves it alone",
            )
        manifests = build_manifests(spec, self._options_for(spec, _secret_value(live["Secret"], TOKEN_KEY)))
        if uses_autoscaler(spec) and deployment is not None and _manages(deployment, FIELD_MANAGER, "spec", "replicas"):
            handover = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "uid": deployment["metadata"]["uid"]},
                "spec": {"replicas": deployment["spec"].get("replicas", 1)},
            }
            self.cluster.apply(handover, manager=HANDOVER_MANAGER, force=False)
        wanted = {manifest["kind"] for manifest in manifests}
        for manifest in manifests:
            existing = live[manifest["kind"]]
            if existing is not None:
                manifest = {**manifest, "metadata": {**manifest["metadata"], "uid": existing["metadata"]["uid"]}}
            self.cluster.apply(manifest)
        for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"):
            existing = live[kind]
            if kind not in wanted and existing is not None:
                self.cluster.delete(kind, name, uid=existing["metadata"]["uid"])
        _last_apply[spec.uid] = time.monotonic()
        return self.observe(spec)

    def observe(self, spec: DeploymentSpec, *, deployment: dict[str, Any] | None = None) -> Observed:
        """Instances from the deployment's pods; its state from the Deployment's status, the pods and their events."""
        name = object_name(spec)
        try:
            if deployment is None:
                deployment = self.cluster.read("Deployment", name)
            if deployment is not None and _owner(deployment) != spec.uid:
                deployment = None
            pods = self.cluster.list_items("Pod", label_selector=label_selector(spec))
            names = {_pod_name(pod) for pod in pods}
            events: dict[str, list[dict[str, Any]]] = {}
            if names:
                # One list of the namespace's pod events (from the cache), not one per pod.
                listed = self.cluster.list_items("Event", field_selector="regarding.kind=Pod")
                for item in listed:
                    regarding = item.get("regarding") or item.get("involvedObject") or {}
                    if regarding.get("name") in names:
                        events.setdefault(regarding["name"], []).append(item)
        except KubernetesForbidden as error:
            return _forbidden(self.namespace, error)
        return observed_from(
            spec,
            current_hash=template_hash(spec, self._options_for(spec, "")),
            deployment=deployment,
            pods=pods,
            events=events,
            now=datetime.now(UTC),
        )

    def supervise(self, spec: DeploymentSpec) -> Observed:
        """The periodic pass: repair drift (a Deployment deleted, scaled or edited by hand) by applying again.

        The cluster's own controllers restart and reschedule pods. A full apply (a no-op when nothing
        drifted) also runs every STUDIO_KUBE_RESYNC_S, for the objects this pass does not read.
        """
        try:
            deployment = self.cluster.read("Deployment", object_name(spec))
        except KubernetesForbidden as error:
            return _forbidden(self.namespace, error)
        due = time.monotonic() - _last_apply.get(spec.uid, float("-inf")) >= settings.STUDIO_KUBE_RESYNC_S
        if deployment is None or due or self._drifted(spec, deployment):
            return self.apply(spec)
        return self.observe(spec, deployment=deployment)

    def _drifted(self, spec: DeploymentSpec, deployment: dict[str, Any]) -> bool:
        if deployment["metadata"].get("deletionTimestamp") or _owner(deployment) != spec.uid:
            return False  # apply would refuse it; observe reports it
        annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
        if annotations.get(TEMPLATE_HASH_ANNOTATION) != template_hash(spec, self._options_for(spec, "")):
            return True
        return not uses_autoscaler(spec) and deployment["spec"].get("replicas") != spec.instance_count

    def delete(self, spec: DeploymentSpec) -> None:
        """Delete the deployment's objects (pods go before their Deployment does); never one that is not its own."""
        name = object_name(spec)
        for kind in reversed(KINDS):
            try:
                existing = self.cluster.read(kind, name)
                if existing is None:
                    continue
                if _owner(existing) != spec.uid:
                    logger.warning(
                        "%s %s/%s is not deployment %s's; not deleting it", kind, self.namespace, name, spec.uid
                    )
                    continue
                self.cluster.delete(kind, name, uid=existing["metadata"]["uid"])
            except KubernetesForbidden as error:
                raise ApplicationError(
                    f"the studio may not delete {kind} objects in namespace {self.namespace!r}: {error}", status=403
                ) from error
        _last_apply.pop(spec.uid, None)

    def logs(
        self,
        spec: DeploymentSpec,
        *,
        container: Container,
        lines: int,
        instance: str | None = None,
        previous: bool = False,
    ) -> str:
        """The last `lines` lines of one container per pod; the crashed run's log when the container is crashing."""
        try:
            pods = self.cluster.list_items("Pod", label_selector=label_selector(spec))
        except KubernetesForbidden as error:
            raise ApplicationError(
                f"the studio may not list pods in {self.namespace!r}: {error}", status=403
            ) from error
        pods = sorted(pods, key=_pod_name)
        if instance is not None:
            pods = [pod for pod in pods if _pod_name(pod) == instance]
            if not pods:
                raise NotFound(f"instance {instance!r} is not a pod of deployment {spec.name!r}")
        chunks = []
        core = k8s.CoreV1Api(self.api_client)
        for pod in pods:
            status = _container_status(pod, container)
            use_previous = previous or _crashed(status)
            try:
                text = self.cluster.call(
                    core.read_namespaced_pod_log,
                    _pod_name(pod),
                    self.namespace,
                    raw=False,
                    container=container,
                    tail_lines=lines,
                    previous=use_previous,
                )
            except KubernetesForbidden as error:
                text = f"(no log: the studio may not read pods/log: {error})\n"
            except ApiException as error:
                if error.status not in (400, 404):
                    raise KubernetesUnavailable(_describe(error)) from error
                text = f"(no log: {_status_message(error)})\n"
            if len(pods) > 1:
                text = f"==> {_pod_name(pod)}/{container}{' (previous)' if use_previous else ''} <==\n{text}"
            chunks.append(text if text.endswith("\n") or not text else text + "\n")
        return "".join(chunks)

    def usage(self, spec: DeploymentSpec) -> dict[str, InstanceUsage]:
        """CPU cores and memory in use per pod of the deployment, from the metrics API; {} when it has none."""
        host = self.api_client.configuration.host
        custom = k8s.CustomObjectsApi(self.api_client)
        try:
            listed = self.cluster.call(
                custom.list_namespaced_custom_object,
                group="metrics.k8s.io",
                version="v1beta1",
                namespace=self.namespace,
                plural="pods",
                label_selector=label_selector(spec),
            )
        except (ApiException, KubernetesUnavailable, KubernetesForbidden) as error:
            # call() turns 503 and 403 into its own errors and keeps the API's answer as the cause.
            cause = error if isinstance(error, ApiException) else error.__cause__
            if not isinstance(cause, ApiException) or cause.status not in NO_METRICS_API:
                raise
            if host not in _no_metrics_logged:
                _no_metrics_logged.add(host)
                if cause.status == 403:
                    logger.warning(
                        "no pod CPU/memory samples: the studio may not list pods.metrics.k8s.io in namespace %s; "
                        "apply deploy/kubernetes/rbac.yaml (%s)",
                        self.namespace,
                        _describe(cause).strip(),
                    )
                else:
                    logger.info(
                        "no pod CPU/memory samples: the metrics API is not served (%s)", _describe(cause).strip()
                    )
            return {}
        _no_metrics_logged.discard(host)
        return usage_from(listed.get("items") or [])


def _load_api_client() -> k8s.ApiClient:
    """STUDIO_KUBECONFIG (and STUDIO_KUBE_CONTEXT) when set, else in-cluster, else the default kubeconfig."""
    context = settings.STUDIO_KUBE_CONTEXT or None
    if settings.STUDIO_KUBECONFIG:
        return k8s_config.new_client_from_config(config_file=settings.STUDIO_KUBECONFIG, context=context)
    try:
        configuration = k8s.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)
        return k8s.ApiClient(configuration)
    except k8s_config.ConfigException:
        return k8s_config.new_client_from_config(context=context)


def _owner(obj: dict[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("labels", {}).get(OWNER_LABEL, ""))


def _secret_value(secret: dict[str, Any] | None, key: str) -> str:
    value = ((secret or {}).get("data") or {}).get(key)
    try:
        return base64.b64decode(value).decode() if value else ""
    except (ValueError, UnicodeDecodeError):
        return ""


def _manages(obj: dict[str, Any], manager: str, *path: str) -> bool:
    """True when `manager` owns the field at `path` by Apply, per the object's managedFields."""
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        node = entry.get("fieldsV1") or {}
        for part in path:
            node = node.get(f"f:{part}") if isinstance(node, dict) else None
            if node is None:
                break
        else:
            return True
    return False


def _forbidden(namespace: str, error: KubernetesForbidden) -> Observed:
    return Observed(
        failed_reason="KubernetesUnaccessible",
        failed_message=f"the studio may not manage objects in namespace {namespace!r}: {error}",
    )


# --- status: pure functions over the API's JSON (camelCase dicts) ---


def observed_from(
    spec: DeploymentSpec,
    *,
    current_hash: str,
    deployment: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    events: dict[str, list[dict[str, Any]]],
    now: datetime,
) -> Observed:
    """The Observed of a deployment from its Deployment, pods and per-pod events, at time `now`."""
    instances = tuple(
        _instance(spec, pod, current_hash, events.get(_pod_name(pod), [])) for pod in sorted(pods, key=_pod_name)
    )
    backend_events = tuple(
        sorted(
            (_event(item) for pod in sorted(events) for item in events[pod]),
            key=lambda event: (event.at or datetime.min.replace(tzinfo=UTC), event.reason, event.key),
        )
    )
    current = [
        pod for pod in pods if _hash_of(pod) == current_hash and not pod.get("metadata", {}).get("deletionTimestamp")
    ]
    reason, message = _failure(deployment, current, events, now)
    replicas = (deployment or {}).get("spec", {}).get("replicas")
    desired = int(replicas) if uses_autoscaler(spec) and replicas is not None else spec.instance_count
    return Observed(
        instances=instances,
        failed_reason=reason,
        failed_message=message,
        events=backend_events,
        desired_instances=desired,
        rollout_complete=rollout_complete(deployment, current_hash),
    )


def rollout_complete(deployment: dict[str, Any] | None, current_hash: str) -> bool:
    """The Deployment controller has seen the current spec and every replica runs it and is available."""
    if deployment is None:
        return False
    template = deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
    if template.get(TEMPLATE_HASH_ANNOTATION) != current_hash:
        return False
    status = deployment.get("status") or {}
    wanted = int(deployment.get("spec", {}).get("replicas", 1))
    if int(status.get("observedGeneration") or 0) < int(deployment.get("metadata", {}).get("generation") or 0):
        return False
    updated = int(status.get("updatedReplicas") or 0)
    return (
        updated >= wanted
        and int(status.get("replicas") or 0) == updated
        and int(status.get("availableReplicas") or 0) >= wanted
    )


def usage_from(items: list[dict[str, Any]]) -> dict[str, InstanceUsage]:
    """Per pod name, the sum of its containers' usage in PodMetrics items ("250m" cores, "128Mi" bytes)."""
    usage = {}
    for item in items:
        containers = item.get("containers") or []
        cores = sum((parse_quantity(c.get("usage", {}).get("cpu", "0")) for c in containers), Decimal(0))
        memory = sum((parse_quantity(c.get("usage", {}).get("memory", "0")) for c in containers), Decimal(0))
        usage[_pod_name(item)] = InstanceUsage(cpu_cores=float(cores), memory_bytes=int(memory))
    return usage


def pod_address(ip: str, port: int | None) -> str:
    """The pod's base URL; an IPv6 address in brackets."""
    if not ip:
        return ""
    try:
        host = f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    except ValueError:
        host = ip
    return f"http://{host}:{port}" if port else f"http://{host}"


def _instance(
    spec: DeploymentSpec, pod: dict[str, Any], current_hash: str, events: list[dict[str, Any]]
) -> InstanceStatus:
    meta, status = pod.get("metadata", {}), pod.get("status", {})
    server = _container_status(pod, "inference-server")
    ready = _condition(status, "Ready") == "True" and not meta.get("deletionTimestamp")
    port = _container_port(pod)
    state = _instance_state(pod, server, ready)
    message = _waiting(server).get("message", "") or _condition_message(status, "PodScheduled")
    if state == "Pending":
        message = _pending_message(status, events) or message
    return InstanceStatus(
        name=meta.get("name", ""),
        state=state,
        ready=ready,
        address=pod_address(status.get("podIP") or "", port),
        generation=spec.generation if _hash_of(pod) == current_hash else 0,
        restarts=int(server.get("restartCount", 0)),
        port=port,
        started_at=_time(status.get("startTime")),
        message=message,
    )


def _instance_state(pod: dict[str, Any], server: dict[str, Any], ready: bool) -> str:
    meta, status = pod.get("metadata", {}), pod.get("status", {})
    if meta.get("deletionTimestamp"):
        return "Terminating"
    if status.get("phase") in ("Failed", "Succeeded"):
        return "Failed"  # evicted, or ran to an end: no longer holds a node
    if ready:
        return "Ready"
    if _waiting(server).get("reason") == "CrashLoopBackOff":
        return "CrashLoopBackOff"
    if _condition(status, "PodScheduled") != "True":
        return "Pending"
    if server.get("restartCount", 0) == 0 and not server.get("ready"):
        return "Starting"
    return "Unready"


def _pending_message(status: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """Why a pod waits for a node: the scheduler's words, and what the cluster autoscaler is doing about it."""
    scheduling = [e for e in events if e.get("reason") == "FailedScheduling"]
    message = (_note(scheduling[-1]) if scheduling else "") or _condition_message(status, "PodScheduled")
    autoscaler = [e for e in events if e.get("reason") in AUTOSCALER_REASONS]
    if autoscaler:
        message = f"{message} (cluster autoscaler: {autoscaler[-1].get('reason')}: {_note(autoscaler[-1])})"
    return message


def _failure(
    deployment: dict[str, Any] | None,
    current: list[dict[str, Any]],
    events: dict[str, list[dict[str, Any]]],
    now: datetime,
) -> tuple[str, str]:
    """(Azure-style reason, message) of the first thing that keeps the current template from becoming ready.

    Only pods of the current template count: a crash of the previous version says nothing about this one.
    """
    conditions = (deployment or {}).get("status", {}).get("conditions", []) or []
    for condition in conditions:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            message = condition.get("message", "")
            reason = "OutOfQuota" if "exceeded quota" in message else "InvalidDeploymentSpec"
            return reason, f"Kubernetes could not create pods: {message}"
    for pod in sorted(current, key=_pod_name):
        name = _pod_name(pod)
        warnings = [event for event in events.get(name, []) if event.get("type") == "Warning"]
        found = _pod_failure(pod, name, warnings, now)
        if found is not None:
            return found
    deadline = next(
        (c for c in conditions if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"),
        None,
    )
    if deadline is not None:
        for pod in sorted(current, key=_pod_name):
            if _condition(pod.get("status", {}), "PodScheduled") == "False":
                detail = _pending_message(pod.get("status", {}), events.get(_pod_name(pod), []))
                return "PodUnschedulable", f"pod {_pod_name(pod)} cannot be scheduled: {detail}"
        return "ResourceNotReady", f"the rollout made no progress: {deadline.get('message', '')}"
    return "", ""


def _pod_failure(
    pod: dict[str, Any], name: str, warnings: list[dict[str, Any]], now: datetime
) -> tuple[str, str] | None:
    status = pod.get("status", {})
    if status.get("phase") in ("Failed", "Succeeded"):
        return None  # evicted: its ReplicaSet makes another
    for init in status.get("initContainerStatuses", []) or []:
        state = init.get("state") or {}
        waiting = _waiting(init)
        terminated = state.get("terminated") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            terminated = (init.get("lastState") or {}).get("terminated") or {}
        if waiting.get("reason") in IMAGE_PULL_REASONS:
            return "ImagePullLoopBackOff", _say(name, init["name"], waiting.get("message", ""), warnings)
        if terminated and terminated.get("exitCode", 0) != 0:
            detail = f"exited with code {terminated.get('exitCode')}: {(terminated.get('message') or '').strip()}"
            return "StorageInitializerFailed", _say(name, init["name"], detail, warnings)
    for container in status.get("containerStatuses", []) or []:
        waiting = _waiting(container)
        last = (container.get("lastState") or {}).get("terminated") or {}
        now_terminated = (container.get("state") or {}).get("terminated") or {}
        if waiting.get("reason") in IMAGE_PULL_REASONS:
            return "ImagePullLoopBackOff", _say(name, container["name"], waiting.get("message", ""), warnings)
        if waiting.get("reason") in CONFIG_REASONS:
            return "InvalidDeploymentSpec", _say(name, container["name"], waiting.get("message", ""), warnings)
        oom = next((t for t in (now_terminated, last) if t.get("reason") == "OOMKilled"), None)
        if oom is not None and not container.get("ready") and _recent(oom, waiting, now):
            limit = _memory_limit(pod, container["name"])
            detail = f"ran out of memory (OOMKilled) at its limit of {limit}; choose a larger instance_type"
            return "PodOutOfMemory", _say(name, container["name"], detail, warnings)
        if waiting.get("reason") == "CrashLoopBackOff":
            exit_code = last.get("exitCode", "?")
            output = (last.get("message") or "").strip()
            detail = f"keeps crashing (exit code {exit_code}, {container.get('restartCount', 0)} restarts)"
            detail += f"; last output: {output}" if output else ""
            return "DeploymentCrashLoopBackOff", _say(name, container["name"], detail, warnings)
    return None


def _recent(terminated: dict[str, Any], waiting: dict[str, Any], now: datetime) -> bool:
    """An OOM kill counts while the container crash-loops on it, or if it happened in the last OOM_RECENT_S."""
    if waiting.get("reason") == "CrashLoopBackOff":
        return True
    finished = _time(terminated.get("finishedAt"))
    return finished is None or (now - finished).total_seconds() <= OOM_RECENT_S


def _say(pod: str, container: str, detail: str, warnings: list[dict[str, Any]]) -> str:
    """A message naming the pod and container, with the latest warning event about that container."""
    message = f"{container} in pod {pod}: {detail}".rstrip(": ")
    related = [event for event in warnings if _container_of(event) in (container, "")]
    if related and _note(related[-1]) and _note(related[-1]) not in message:
        message += f" ({related[-1].get('reason')}: {_note(related[-1])})"
    return message


def _event(item: dict[str, Any]) -> BackendEvent:
    """An event of either API (events.k8s.io/v1 or core/v1), counted: `series.count`, else the deprecated count."""
    regarding = item.get("regarding") or item.get("involvedObject") or {}
    series = item.get("series") or {}
    count = int(series.get("count") or item.get("deprecatedCount") or item.get("count") or 1)
    at = _time(
        series.get("lastObservedTime")
        or item.get("deprecatedLastTimestamp")
        or item.get("lastTimestamp")
        or item.get("eventTime")
        or item.get("deprecatedFirstTimestamp")
        or item.get("firstTimestamp")
    )
    return BackendEvent(
        reason=item.get("reason", "") or "",
        message=_note(item),
        type="Warning" if item.get("type") == "Warning" else "Normal",
        instance=regarding.get("name", "") or "",
        container=_container_of(item),
        at=at,
        key=str((item.get("metadata") or {}).get("uid") or ""),
        count=count,
    )


def _note(event: dict[str, Any]) -> str:
    return str(event.get("note") or event.get("message") or "")


def _container_of(event: dict[str, Any]) -> str:
    """`spec.containers{inference-server}` → `inference-server`."""
    regarding = event.get("regarding") or event.get("involvedObject") or {}
    path = regarding.get("fieldPath", "") or ""
    return path.partition("{")[2].rstrip("}") if "{" in path else ""


def _hash_of(pod: dict[str, Any]) -> str:
    return str((pod.get("metadata", {}).get("annotations") or {}).get(TEMPLATE_HASH_ANNOTATION, ""))


def _container_status(pod: dict[str, Any], container: str) -> dict[str, Any]:
    status = pod.get("status", {}) or {}
    for item in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if item.get("name") == container:
            return item
    return {}


def _crashed(status: dict[str, Any]) -> bool:
    """The container has a finished earlier run and is not running now: its useful log is the previous one."""
    if not status or status.get("restartCount", 0) < 1:
        return False
    return "running" not in (status.get("state") or {})


def _waiting(status: dict[str, Any]) -> dict[str, Any]:
    return (status.get("state") or {}).get("waiting") or {}


def _condition(status: dict[str, Any], kind: str) -> str:
    for condition in status.get("conditions", []) or []:
        if condition.get("type") == kind:
            return str(condition.get("status", ""))
    return ""


def _condition_message(status: dict[str, Any], kind: str) -> str:
    for condition in status.get("conditions", []) or []:
        if condition.get("type") == kind and condition.get("status") != "True":
            return str(condition.get("message", "") or "")
    return ""


def _container_port(pod: dict[str, Any]) -> int | None:
    for container in pod.get("spec", {}).get("containers", []) or []:
        if container.get("name") == "inference-server":
            for port in container.get("ports", []) or []:
                return int(port["containerPort"])
    return None


def _memory_limit(pod: dict[str, Any], container: str) -> str:
    for item in pod.get("spec", {}).get("containers", []) or []:
        if item.get("name") == container:
            return str((item.get("resources") or {}).get("limits", {}).get("memory", "its limit"))
    return "its limit"


def _pod_name(pod: dict[str, Any]) -> str:
    return str(pod.get("metadata", {}).get("name", ""))


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _status_message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except (ValueError, AttributeError):
        return str(error.body or error.reason)


def _describe(error: ApiException) -> str:
    return f"Kubernetes API answered {error.status}: {_status_message(error)}"


def _apply_failure(error: ApiException, *, namespace: str) -> Observed | None:
    """A user-fixable apply error as a failed Observed; None when it is worth retrying."""
    message = _status_message(error)
    if error.status in (400, 422):
        return Observed(failed_reason="InvalidDeploymentSpec", failed_message=f"the cluster rejected it: {message}")
    if error.status == 404 and "namespace" in message.lower():
        return Observed(
            failed_reason="NamespaceNotFound",
            failed_message=f"namespace {namespace!r} does not exist in the cluster (STUDIO_KUBE_NAMESPACE): {message}",
        )
    return None

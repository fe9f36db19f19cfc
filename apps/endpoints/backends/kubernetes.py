"""The Kubernetes backend: one Deployment, Service, Secret (and HPA) per studio deployment.

The only module that imports `kubernetes`. Objects are written with server-side apply (field
manager `studio`, forced), so applying twice is a no-op and fields other managers own (an HPA's
replica count, a mesh's sidecar) are left alone; nothing is ever replaced blindly. Status comes
from the Deployment, its pods and their events, classified into Azure's Kubernetes-endpoint error
codes (ImagePullLoopBackOff, DeploymentCrashLoopBackOff, PodUnschedulable, PodOutOfMemory, ...).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import urllib3
from django.conf import settings
from kubernetes import client as k8s  # noqa: TID251 (the one module allowed)
from kubernetes import config as k8s_config  # noqa: TID251
from kubernetes.client.exceptions import ApiException  # noqa: TID251
from kubernetes.utils import parse_quantity  # noqa: TID251

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
    LABEL_PREFIX,
    ManifestOptions,
    build_manifests,
    label_selector,
    object_name,
    options_from_settings,
    template_hash,
    uses_autoscaler,
)

logger = logging.getLogger(__name__)

FIELD_MANAGER = "studio"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
# (connect, read) seconds: a reconcile task must never hang on an unreachable cluster.
REQUEST_TIMEOUT = (5, 30)
IMAGE_PULL_REASONS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CONFIG_REASONS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
# 404: no metrics.k8s.io API registered; 503: registered, but metrics-server is not answering;
# 403: the studio's Role predates its permission to list PodMetrics.
NO_METRICS_API = (404, 503, 403)
# API servers already reported as having no metrics API, so the sampler says so once, not every 10 s.
_no_metrics_logged: set[str] = set()


class KubernetesUnavailable(BackendUnavailable):
    """A transient failure (API unreachable, 5xx, 409, 429, objects still terminating): retry later."""


class KubernetesBackend:
    """Runs deployments as Kubernetes objects in one namespace, through the official client."""

    def __init__(
        self,
        *,
        api_client: k8s.ApiClient | None = None,
        namespace: str | None = None,
        options: Callable[[DeploymentSpec], ManifestOptions] | None = None,
    ) -> None:
        self._api_client = api_client
        self.namespace = namespace or settings.STUDIO_KUBE_NAMESPACE
        self._options = options or options_from_settings

    # --- the Backend protocol ---

    def apply(self, spec: DeploymentSpec) -> Observed:
        """Server-side apply the Secret, Deployment, Service and HPA; drop an HPA no longer wanted; report."""
        name = object_name(spec)
        try:
            options = self._options(spec)
            manifests = build_manifests(spec, _in_namespace(options, self.namespace))
        except ApplicationError as error:
            return Observed(failed_reason="InvalidDeploymentSpec", failed_message=error.message)
        existing = self._read(self.apps.read_namespaced_deployment, name)
        if existing is not None and existing.metadata.deletion_timestamp is not None:
            raise KubernetesUnavailable(f"Deployment {self.namespace}/{name} is still being deleted; retry when gone")
        try:
            for manifest in manifests:
                self._apply(manifest)
            if not uses_autoscaler(spec):
                self._delete_quietly(self.autoscaling.delete_namespaced_horizontal_pod_autoscaler, name)
        except ApiException as error:
            failure = _apply_failure(error, namespace=self.namespace)
            if failure is None:
                raise KubernetesUnavailable(_describe(error)) from error
            return failure
        return self.observe(spec)

    def observe(self, spec: DeploymentSpec) -> Observed:
        """Instances from the deployment's pods; failures and events from their statuses and events."""
        name = object_name(spec)
        deployment = self._read(self.apps.read_namespaced_deployment, name)
        pods = self._call(self.core.list_namespaced_pod, self.namespace, label_selector=label_selector(spec)).items
        events: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            selector = f"involvedObject.kind=Pod,involvedObject.name={pod.metadata.name}"
            found = self._call(self.core.list_namespaced_event, self.namespace, field_selector=selector).items
            events[pod.metadata.name] = [self._dict(event) for event in found]
        return observed_from(
            spec,
            current_hash=template_hash(spec, _in_namespace(self._options(spec), self.namespace)),
            deployment=self._dict(deployment) if deployment is not None else None,
            pods=[self._dict(pod) for pod in pods],
            events=events,
        )

    def supervise(self, spec: DeploymentSpec) -> Observed:
        """The periodic pass: the cluster's own controllers keep pods running, so this only observes."""
        return self.observe(spec)

    def delete(self, spec: DeploymentSpec) -> None:
        """Delete the objects with foreground propagation (pods go before their Deployment does)."""
        name = object_name(spec)
        self._delete_quietly(self.autoscaling.delete_namespaced_horizontal_pod_autoscaler, name)
        self._delete_quietly(self.core.delete_namespaced_service, name)
        self._delete_quietly(self.apps.delete_namespaced_deployment, name)
        self._delete_quietly(self.core.delete_namespaced_secret, name)

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
        pods = self._call(self.core.list_namespaced_pod, self.namespace, label_selector=label_selector(spec)).items
        pods = sorted(pods, key=lambda pod: pod.metadata.name)
        if instance is not None:
            pods = [pod for pod in pods if pod.metadata.name == instance]
            if not pods:
                raise NotFound(f"instance {instance!r} is not a pod of deployment {spec.name!r}")
        chunks = []
        for pod in pods:
            status = _container_status(self._dict(pod), container)
            use_previous = previous or _crashed(status)
            try:
                text = self._call(
                    self.core.read_namespaced_pod_log,
                    pod.metadata.name,
                    self.namespace,
                    container=container,
                    tail_lines=lines,
                    previous=use_previous,
                )
            except ApiException as error:
                if error.status not in (400, 404):
                    raise KubernetesUnavailable(_describe(error)) from error
                text = f"(no log: {_status_message(error)})\n"
            if len(pods) > 1:
                text = f"==> {pod.metadata.name}/{container}{' (previous)' if use_previous else ''} <==\n{text}"
            chunks.append(text if text.endswith("\n") or not text else text + "\n")
        return "".join(chunks)

    def usage(self, spec: DeploymentSpec) -> dict[str, InstanceUsage]:
        """CPU cores and memory in use per pod of the deployment, from the metrics API; {} when it has none."""
        host = self.api_client.configuration.host
        try:
            listed = self._call(
                self.custom.list_namespaced_custom_object,
                group="metrics.k8s.io",
                version="v1beta1",
                namespace=self.namespace,
                plural="pods",
                label_selector=label_selector(spec),
            )
        except (ApiException, KubernetesUnavailable) as error:
            # _call turns a 503 into KubernetesUnavailable and keeps the API's answer as the cause.
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

    # --- clients ---

    @property
    def api_client(self) -> k8s.ApiClient:
        if self._api_client is None:
            self._api_client = _load_api_client()
        return self._api_client

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api_client)

    @property
    def apps(self) -> k8s.AppsV1Api:
        return k8s.AppsV1Api(self.api_client)

    @property
    def autoscaling(self) -> k8s.AutoscalingV2Api:
        return k8s.AutoscalingV2Api(self.api_client)

    @property
    def custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.api_client)

    # --- helpers ---

    def _apply(self, manifest: dict[str, Any]) -> None:
        patch = {
            "Secret": self.core.patch_namespaced_secret,
            "Service": self.core.patch_namespaced_service,
            "Deployment": self.apps.patch_namespaced_deployment,
            "HorizontalPodAutoscaler": self.autoscaling.patch_namespaced_horizontal_pod_autoscaler,
        }[manifest["kind"]]
        patch(
            manifest["metadata"]["name"],
            self.namespace,
            manifest,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY_CONTENT_TYPE,
            _request_timeout=REQUEST_TIMEOUT,
        )

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One API call; transport errors and 5xx become KubernetesUnavailable."""
        try:
            return method(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except urllib3.exceptions.HTTPError as error:
            raise KubernetesUnavailable(f"Kubernetes API unreachable: {error}") from error
        except ApiException as error:
            if error.status is None or error.status >= 500 or error.status in (409, 429):
                raise KubernetesUnavailable(_describe(error)) from error
            raise

    def _read(self, method: Callable[..., Any], name: str) -> Any:
        try:
            return self._call(method, name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise KubernetesUnavailable(_describe(error)) from error

    def _delete_quietly(self, method: Callable[..., Any], name: str) -> None:
        try:
            self._call(method, name, self.namespace, propagation_policy="Foreground")
        except ApiException as error:
            if error.status != 404:
                raise KubernetesUnavailable(_describe(error)) from error

    def _dict(self, obj: Any) -> dict[str, Any]:
        return self.api_client.sanitize_for_serialization(obj)


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


def _in_namespace(options: ManifestOptions, namespace: str) -> ManifestOptions:
    return replace(options, namespace=namespace)


# --- status: pure functions over the API's JSON (camelCase dicts) ---


def observed_from(
    spec: DeploymentSpec,
    *,
    current_hash: str,
    deployment: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    events: dict[str, list[dict[str, Any]]],
) -> Observed:
    """The Observed of a deployment from its Deployment, pods and per-pod events."""
    instances = tuple(_instance(spec, pod, current_hash) for pod in sorted(pods, key=_pod_name))
    backend_events = tuple(
        sorted(
            (_event(item) for pod in sorted(events) for item in events[pod]),
            key=lambda event: (event.at or datetime.min.replace(tzinfo=UTC), event.reason),
        )
    )
    reason, message = _failure(deployment, pods, events)
    return Observed(instances=instances, failed_reason=reason, failed_message=message, events=backend_events)


def usage_from(items: list[dict[str, Any]]) -> dict[str, InstanceUsage]:
    """Per pod name, the sum of its containers' usage in PodMetrics items ("250m" cores, "128Mi" bytes)."""
    usage = {}
    for item in items:
        containers = item.get("containers") or []
        cores = sum((parse_quantity(c.get("usage", {}).get("cpu", "0")) for c in containers), Decimal(0))
        memory = sum((parse_quantity(c.get("usage", {}).get("memory", "0")) for c in containers), Decimal(0))
        usage[_pod_name(item)] = InstanceUsage(cpu_cores=float(cores), memory_bytes=int(memory))
    return usage


def _instance(spec: DeploymentSpec, pod: dict[str, Any], current_hash: str) -> InstanceStatus:
    meta, status = pod.get("metadata", {}), pod.get("status", {})
    server = _container_status(pod, "inference-server")
    ready = _condition(status, "Ready") == "True" and not meta.get("deletionTimestamp")
    annotations = meta.get("annotations") or {}
    port = _container_port(pod)
    pod_ip = status.get("podIP") or ""
    return InstanceStatus(
        name=meta.get("name", ""),
        state=_instance_state(pod, server, ready),
        ready=ready,
        address=f"http://{pod_ip}:{port}" if pod_ip else "",
        generation=spec.generation if annotations.get(f"{LABEL_PREFIX}template-hash") == current_hash else 0,
        restarts=int(server.get("restartCount", 0)),
        port=port,
        started_at=_time(status.get("startTime")),
        message=_waiting(server).get("message", "") or _condition_message(status, "PodScheduled"),
    )


def _instance_state(pod: dict[str, Any], server: dict[str, Any], ready: bool) -> str:
    meta, status = pod.get("metadata", {}), pod.get("status", {})
    if meta.get("deletionTimestamp"):
        return "Terminating"
    if status.get("phase") in ("Failed", "Succeeded"):
        return "Failed"
    if ready:
        return "Ready"
    if _waiting(server).get("reason") == "CrashLoopBackOff":
        return "CrashLoopBackOff"
    if _condition(status, "PodScheduled") != "True" or status.get("phase") == "Pending" and not server:
        return "Pending"
    if server.get("restartCount", 0) == 0 and not server.get("ready"):
        return "Starting"
    return "Unready"


def _failure(
    deployment: dict[str, Any] | None, pods: list[dict[str, Any]], events: dict[str, list[dict[str, Any]]]
) -> tuple[str, str]:
    """(Azure-style reason, message) of the first thing that keeps the deployment from becoming ready."""
    for condition in (deployment or {}).get("status", {}).get("conditions", []) or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            message = condition.get("message", "")
            reason = "OutOfQuota" if "exceeded quota" in message else "InvalidDeploymentSpec"
            return reason, f"Kubernetes could not create pods: {message}"
    for pod in sorted(pods, key=_pod_name):
        name = _pod_name(pod)
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        warnings = [event for event in events.get(name, []) if event.get("type") == "Warning"]
        found = _pod_failure(pod, name, warnings)
        if found is not None:
            return found
    for condition in (deployment or {}).get("status", {}).get("conditions", []) or []:
        if condition.get("reason") == "ProgressDeadlineExceeded":
            return "ResourceNotReady", f"the rollout made no progress: {condition.get('message', '')}"
    return "", ""


def _pod_failure(pod: dict[str, Any], name: str, warnings: list[dict[str, Any]]) -> tuple[str, str] | None:
    status = pod.get("status", {})
    for init in status.get("initContainerStatuses", []) or []:
        terminated = (init.get("state") or {}).get("terminated") or (init.get("lastState") or {}).get("terminated")
        waiting = _waiting(init)
        if waiting.get("reason") in IMAGE_PULL_REASONS:
            return "ImagePullLoopBackOff", _say(name, init["name"], waiting.get("message", ""), warnings)
        if terminated and terminated.get("exitCode", 0) != 0:
            detail = f"exited with code {terminated.get('exitCode')}: {(terminated.get('message') or '').strip()}"
            return "StorageInitializerFailed", _say(name, init["name"], detail, warnings)
    for container in status.get("containerStatuses", []) or []:
        waiting = _waiting(container)
        last = (container.get("lastState") or {}).get("terminated") or {}
        now = (container.get("state") or {}).get("terminated") or {}
        if waiting.get("reason") in IMAGE_PULL_REASONS:
            return "ImagePullLoopBackOff", _say(name, container["name"], waiting.get("message", ""), warnings)
        if waiting.get("reason") in CONFIG_REASONS:
            return "InvalidDeploymentSpec", _say(name, container["name"], waiting.get("message", ""), warnings)
        if "OOMKilled" in (last.get("reason"), now.get("reason")):
            limit = _memory_limit(pod, container["name"])
            detail = f"ran out of memory (OOMKilled) at its limit of {limit}; choose a larger instance_type"
            return "PodOutOfMemory", _say(name, container["name"], detail, warnings)
        if waiting.get("reason") == "CrashLoopBackOff":
            exit_code = last.get("exitCode", "?")
            output = (last.get("message") or "").strip()
            detail = f"keeps crashing (exit code {exit_code}, {container.get('restartCount', 0)} restarts)"
            detail += f"; last output: {output}" if output else ""
            return "DeploymentCrashLoopBackOff", _say(name, container["name"], detail, warnings)
    if _condition(status, "PodScheduled") == "False":
        scheduling = [event for event in warnings if event.get("reason") == "FailedScheduling"]
        message = (scheduling[-1].get("message") if scheduling else "") or _condition_message(status, "PodScheduled")
        return "PodUnschedulable", f"pod {name} cannot be scheduled: {message}"
    return None


def _say(pod: str, container: str, detail: str, warnings: list[dict[str, Any]]) -> str:
    """A message naming the pod and container, with the latest warning event about that container."""
    message = f"{container} in pod {pod}: {detail}".rstrip(": ")
    related = [event for event in warnings if _container_of(event) in (container, "")]
    if related and related[-1].get("message") and related[-1]["message"] not in message:
        message += f" ({related[-1].get('reason')}: {related[-1]['message']})"
    return message


def _event(item: dict[str, Any]) -> BackendEvent:
    involved = item.get("involvedObject", {}) or {}
    at = _time(item.get("lastTimestamp") or item.get("eventTime") or item.get("firstTimestamp"))
    count = int(item.get("count") or 1)
    message = item.get("message", "") or ""
    return BackendEvent(
        reason=item.get("reason", "") or "",
        message=f"{message} (x{count})" if count > 1 else message,
        type="Warning" if item.get("type") == "Warning" else "Normal",
        instance=involved.get("name", "") or "",
        container=_container_of(item),
        at=at,
    )


def _container_of(event: dict[str, Any]) -> str:
    """`spec.containers{inference-server}` → `inference-server`."""
    path = (event.get("involvedObject", {}) or {}).get("fieldPath", "") or ""
    return path.partition("{")[2].rstrip("}") if "{" in path else ""


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
    if error.status in (401, 403):
        return Observed(
            failed_reason="KubernetesUnaccessible",
            failed_message=f"the studio may not manage objects in namespace {namespace!r}: {message}",
        )
    return None

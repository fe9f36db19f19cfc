"""Pure builders: one `DeploymentSpec` in, the Kubernetes objects that run it out (plain dicts).

Per studio deployment: a Secret (sensitive variables and the download credential), a Deployment
(init containers `studio-runtime` and `storage-initializer`, main container `inference-server`), a
Service, a PodDisruptionBudget when it runs several instances, and an autoscaling/v2
HorizontalPodAutoscaler when `scale_settings.type` is `target_utilization`.
Nothing here talks to a cluster or reads settings, except `options_from_settings`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from django.conf import settings

from apps.core.errors import ApplicationError
from apps.endpoints.backends.base import DeploymentSpec, ProbeSpec
from apps.endpoints.backends.signed_urls import Scope, sign_credential
from runtime.storage_initializer import MODELS_FOLDER, model_subdir

Manifest = dict[str, Any]

LABEL_PREFIX = "studio.ml/"
OWNER_LABEL = f"{LABEL_PREFIX}deployment-uid"
MANAGED_BY = {"app.kubernetes.io/managed-by": "studio", "app.kubernetes.io/part-of": "studio"}
MANAGED_BY_SELECTOR = "app.kubernetes.io/managed-by=studio"
DIGESTS_ANNOTATION = f"{LABEL_PREFIX}digests"
TEMPLATE_HASH_ANNOTATION = f"{LABEL_PREFIX}template-hash"
APP_ROOT = "/var/azureml-app"
CODE_DIR = f"{APP_ROOT}/code"
MODELS_DIR = f"{APP_ROOT}/{MODELS_FOLDER}"
# The self-contained runtime the `studio-runtime` init container copies in (deploy/runtime.Dockerfile builds it):
# the runtime package and its compiled dependencies for each CPython it supports, and a launcher that picks the
# image's own Python, so any image with Python 3.9+ (Azure's base images, users' own) serves score.py unchanged.
RUNTIME_DIR = "/var/studio-runtime"
RUNTIME_BUNDLE = "/opt/studio-runtime"
RUNTIME_LAUNCHER = f"{RUNTIME_DIR}/bin/studio-infsrv"
DEFAULT_PORT = 5001
# The labels of the gateway's pods (deploy/kubernetes/gateway.yaml), the only pods inference pods take traffic from.
GATEWAY_POD_LABELS = {"app.kubernetes.io/component": "gateway"}
SERVICE_PORT = 80
TOKEN_KEY = "STUDIO_DOWNLOAD_TOKEN"
DOWNLOADS_PATH = "/api/v1/downloads"
# The pods' user: non-root, as Pod Security's "restricted" level requires (images that run as root get this uid).
POD_UID = 1000
# Seconds a terminating pod keeps serving after it is marked terminating, so every gateway stops routing to it first.
PRESTOP_S = 5
# Room for what a pod writes besides model and code: pip packages at start, logs, the runtime bundle.
SCRATCH_BYTES = 1024**3
RUNTIME_BUNDLE_LIMIT = "512Mi"
# init() may take this long (model loading) before the liveness probe can restart the container.
STARTUP_BUDGET_S = 600
# Names that look like credentials go to the Secret, not into the pod spec in clear.
SENSITIVE_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|CONNECTION_STRING|PRIVATE)", re.IGNORECASE)
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# Room for the "-<replicaset hash>-<pod suffix>" Kubernetes appends to pod names.
MAX_NAME = 47
UID_CHARS = 8
# GPU node pools are usually tainted so that only GPU workloads land there (AKS: `sku=gpu:NoSchedule`).
DEFAULT_GPU_TOLERATIONS: tuple[Mapping[str, str], ...] = (
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
)

# The init container's command: the runtime package's storage initializer (downloads and unpacks the
# model and code archives, refusing entries outside their folder, all or nothing; see its module).
STORAGE_INITIALIZER_COMMAND = ["python", "-m", "runtime.storage_initializer"]
RUNTIME_COPY_COMMAND = ["cp", "-R", f"{RUNTIME_BUNDLE}/.", f"{RUNTIME_DIR}/"]


@dataclass(frozen=True)
class ManifestOptions:
    """What the manifests need besides the spec: where they run and how pods reach the studio."""

    namespace: str = "studio-workloads"
    runtime_image: str = "ghcr.io/studio-ml/runtime:0.1.0"  # used when the environment names no image
    initializer_image: str = ""  # the image holding the runtime bundle and package; "" = runtime_image
    studio_url: str = ""  # the studio as pods reach it ("" = no downloads: model and code are not fetched)
    download_token: str = ""  # the deployment's download credential (signed_urls), kept in its Secret
    image_pull_secrets: tuple[str, ...] = ()
    gpu_tolerations: tuple[Mapping[str, str], ...] = DEFAULT_GPU_TOLERATIONS
    gpu_node_selector: Mapping[str, str] = field(default_factory=dict)
    # Where the gateway's pods run (deploy/kubernetes/gateway.yaml): a NetworkPolicy lets only them reach the
    # inference pods. "" = no policy (a gateway outside the cluster reaches pods some other way).
    gateway_namespace: str = "studio"


def object_name(spec: DeploymentSpec) -> str:
    """The name of the deployment's objects: `<endpoint>-<deployment>-<uid>`, a DNS-1035 label of ≤ 47 characters.

    The uid part makes names unique: `abc-def`/`ghi` and `abc`/`def-ghi` differ, and no deployment can take
    the name of anything else in the namespace (the studio's own `studio-web`, say).
    """
    short = re.sub(r"[^a-z0-9]", "", spec.uid.lower())[:UID_CHARS]
    prefix = re.sub(r"[^a-z0-9-]+", "-", f"{spec.endpoint_name}-{spec.name}".lower()).strip("-")
    prefix = prefix[: MAX_NAME - UID_CHARS - 1].rstrip("-")
    if not prefix[:1].isalpha():
        prefix = f"d-{prefix}"[: MAX_NAME - UID_CHARS - 1].rstrip("-")
    return f"{prefix}-{short}"


def selector_labels(spec: DeploymentSpec) -> dict[str, str]:
    """The immutable labels that pick this deployment's pods."""
    return {OWNER_LABEL: spec.uid}


def labels(spec: DeploymentSpec) -> dict[str, str]:
    """Every label the deployment's objects and pods carry."""
    return {
        **MANAGED_BY,
        "app.kubernetes.io/name": "inference-server",
        "app.kubernetes.io/instance": object_name(spec),
        f"{LABEL_PREFIX}endpoint": _label_value(spec.endpoint_name),
        f"{LABEL_PREFIX}endpoint-uid": spec.endpoint_uid,
        f"{LABEL_PREFIX}deployment": _label_value(spec.name),
        **selector_labels(spec),
    }


def label_selector(spec: DeploymentSpec) -> str:
    """The selector as a query string for list calls."""
    return ",".join(f"{key}={value}" for key, value in selector_labels(spec).items())


def uses_autoscaler(spec: DeploymentSpec) -> bool:
    """True when an HPA, not `instance_count`, owns the number of replicas."""
    return str(spec.scale_settings.get("type", "default")) == "target_utilization"


def several_instances(spec: DeploymentSpec) -> bool:
    """True when the deployment may run more than one pod: it gets a disruption budget and spreads them."""
    if uses_autoscaler(spec):
        return _whole(spec.scale_settings, "max_instances", 1, low=1) > 1
    return spec.instance_count > 1


def build_manifests(spec: DeploymentSpec, options: ManifestOptions) -> list[Manifest]:
    """Every object of the deployment, in apply order (Secret first: the pods read it at start)."""
    # The NetworkPolicy before the Deployment: no pod of it is ever reachable by other pods.
    policy = [build_network_policy(spec, options)] if options.gateway_namespace else []
    manifests = [build_secret(spec, options), *policy, build_deployment(spec, options), build_service(spec, options)]
    if several_instances(spec):
        manifests.append(build_pdb(spec, options))
    if uses_autoscaler(spec):
        manifests.append(build_hpa(spec, options))
    return manifests


def render_manifests(spec: DeploymentSpec, options: ManifestOptions | None = None) -> str:
    """The manifests as multi-document YAML, for review and GitOps (nothing is applied)."""
    documents = build_manifests(spec, options or ManifestOptions())
    return yaml.dump_all(
        documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False, explicit_start=True, width=120
    )


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (pip requirements, the install command) as readable `|` blocks, and no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def options_from_settings(
    spec: DeploymentSpec, *, scope: Scope = "deployment", previous_token: str = ""
) -> ManifestOptions:
    """Options from the studio's settings, with a download credential for the spec's code and model.

    `scope` is what revokes the credential: the deployment (the default), or its endpoint for manifests
    rendered for GitOps of a deployment the studio does not hold. `previous_token` (the one in the
    deployment's Secret now) keeps the digests of the specs a rollout may still be replacing.
    """
    token = sign_credential(
        scope=scope,
        uid=spec.uid if scope == "deployment" else spec.endpoint_uid,
        code=[spec.code_digest] if spec.code_root and spec.code_digest else [],
        models=[spec.model_uid] if spec.model_asset and spec.model_uid else [],
        previous=previous_token,
    )
    defaults = ManifestOptions()
    node_selector = dict(item.split("=", 1) for item in settings.STUDIO_KUBE_GPU_NODE_SELECTOR if "=" in item)
    return ManifestOptions(
        namespace=settings.STUDIO_KUBE_NAMESPACE or defaults.namespace,
        runtime_image=settings.STUDIO_KUBE_RUNTIME_IMAGE or defaults.runtime_image,
        initializer_image=settings.STUDIO_KUBE_INITIALIZER_IMAGE or defaults.initializer_image,
        studio_url=(settings.STUDIO_KUBE_STUDIO_URL or settings.STUDIO_PUBLIC_URL).rstrip("/"),
        download_token=token,
        image_pull_secrets=tuple(settings.STUDIO_KUBE_IMAGE_PULL_SECRETS),
        gpu_tolerations=tuple(toleration(text) for text in settings.STUDIO_KUBE_GPU_TOLERATIONS),
        gpu_node_selector=node_selector,
        gateway_namespace=settings.STUDIO_KUBE_GATEWAY_NAMESPACE,
    )


def toleration(text: str) -> dict[str, str]:
    """A toleration from kubectl's taint syntax: `key:Effect` (any value) or `key=value:Effect`."""
    taint, _, effect = text.strip().rpartition(":")
    key, equals, value = taint.partition("=")
    if not key or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise ApplicationError(
            f"STUDIO_KUBE_GPU_TOLERATIONS: {text!r} is not `key:Effect` or `key=value:Effect` "
            "(Effect one of NoSchedule, PreferNoSchedule, NoExecute)"
        )
    if equals:
        return {"key": key, "operator": "Equal", "value": value, "effect": effect}
    return {"key": key, "operator": "Exists", "effect": effect}


# --- the objects ---


def build_secret(spec: DeploymentSpec, options: ManifestOptions) -> Manifest:
    """Sensitive variables and the download credential; rewriting the credential never restarts a pod."""
    data = {name: value for name, value in _sensitive_env(spec).items()}
    if options.download_token and _downloads(spec, options):
        data[TOKEN_KEY] = options.download_token
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(spec, options),
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in sorted(data.items())},
    }


def build_deployment(spec: DeploymentSpec, options: ManifestOptions) -> Manifest:
    """The apps/v1 Deployment: studio-runtime and storage-initializer, then inference-server.

    Rolls with maxUnavailable 0 and a surge of a quarter, so a broken version never takes the old one
    down and a large deployment does not roll one pod at a time.
    """
    name = object_name(spec)
    port = _scoring_port(spec)
    custom = _is_custom_container(spec)
    init_containers = [] if custom else [_runtime_container(options)]
    init_containers.append(_initializer_container(spec, options, name))
    volumes: list[dict[str, Any]] = [{"name": "app", "emptyDir": {"sizeLimit": _quantity_mi(_app_bytes(spec))}}]
    if not custom:
        volumes.append({"name": "studio-runtime", "emptyDir": {"sizeLimit": RUNTIME_BUNDLE_LIMIT}})
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": POD_UID,
            "runAsGroup": POD_UID,
            "fsGroup": POD_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": grace_period_s(spec),
        "initContainers": init_containers,
        "containers": [_inference_container(spec, options, name, port)],
        "volumes": volumes,
    }
    if options.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": secret} for secret in options.image_pull_secrets]
    if spec.instance_type.gpus:
        if options.gpu_tolerations:
            pod_spec["tolerations"] = [dict(toleration) for toleration in options.gpu_tolerations]
        if options.gpu_node_selector:
            pod_spec["nodeSelector"] = dict(options.gpu_node_selector)
    if several_instances(spec):
        pod_spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector_labels(spec)},
                "matchLabelKeys": ["pod-template-hash"],  # spread each revision, not old and new together
            }
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ]
    annotations = {
        # What the pods run, by digest: a change of code, model or environment changes the template, so the pods roll.
        DIGESTS_ANNOTATION: json.dumps(digests(spec), sort_keys=True, separators=(",", ":")),
        # Pods read sensitive values at start: a changed value must restart them too.
        f"{LABEL_PREFIX}env-checksum": _checksum(_sensitive_env(spec)),
    }
    template = {"metadata": {"labels": labels(spec), "annotations": annotations}, "spec": pod_spec}
    # Pods carry the hash of the template they were made from, so status can tell current from stale.
    annotations[TEMPLATE_HASH_ANNOTATION] = _checksum({"t": json.dumps(template, sort_keys=True)})
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(spec)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
        "progressDeadlineSeconds": progress_deadline_s(spec),
        "revisionHistoryLimit": 3,
        "template": template,
    }
    if not uses_autoscaler(spec):
        # With an HPA the field is left out, and the backend hands it over to the HPA first (kubernetes.py).
        deployment_spec = {"replicas": spec.instance_count, **deployment_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec, options, annotations=True),
        "spec": deployment_spec,
    }


def digests(spec: DeploymentSpec) -> dict[str, str]:
    """The code, model and environment a pod of this spec runs, by digest."""
    return {
        "code": spec.code_digest or "" if spec.code_root else "",
        "model": spec.model_uid or "" if spec.model_asset else "",
        "environment": spec.environment.spec_hash,
    }


def template_hash(spec: DeploymentSpec, options: ManifestOptions) -> str:
    """The hash the current pod template's pods carry in their `template-hash` annotation."""
    template = build_deployment(spec, options)["spec"]["template"]
    return str(template["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION])


def grace_period_s(spec: DeploymentSpec) -> int:
    """How long a terminating pod may take: the preStop pause, then the longest request, then a margin."""
    return PRESTOP_S + drain_s(spec) + 5


def drain_s(spec: DeploymentSpec) -> int:
    """How long the runtime finishes requests in flight after SIGTERM: at least the request timeout."""
    return math.ceil(spec.request.request_timeout_ms / 1000) + 5


def progress_deadline_s(spec: DeploymentSpec) -> int:
    """When Kubernetes declares a rollout stuck (ProgressDeadlineExceeded, the deployment's Failed)."""
    probe = spec.liveness_probe
    startup = probe.initial_delay + probe.period * _startup_failures(probe)
    return max(600, startup + 300)


def build_service(spec: DeploymentSpec, options: ManifestOptions) -> Manifest:
    """A ClusterIP Service in front of the ready pods: `http://<name>.<namespace>.svc`; its EndpointSlices route."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, options),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(spec),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def build_network_policy(spec: DeploymentSpec, options: ManifestOptions) -> Manifest:
    """Only the gateway's pods may reach the inference pods (and only their scoring port): no other pod in the
    cluster can call an instance without the endpoint's key."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(spec, options),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(spec)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": options.gateway_namespace}
                            },
                            "podSelector": {"matchLabels": dict(GATEWAY_POD_LABELS)},
                        }
                    ],
                    "ports": [{"port": _scoring_port(spec), "protocol": "TCP"}],
                }
            ],
        },
    }


def build_pdb(spec: DeploymentSpec, options: ManifestOptions) -> Manifest:
    """A PodDisruptionBudget: a node drain or upgrade takes at most one pod at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(spec, options),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(spec)}},
    }


def build_hpa(spec: DeploymentSpec, options: ManifestOptions) -> Manifest:
    """An autoscaling/v2 HPA on CPU utilisation from Azure's target_utilization scale settings."""
    settings = spec.scale_settings
    minimum = _whole(settings, "min_instances", 1, low=1)
    maximum = _whole(settings, "max_instances", max(1, minimum), low=1)
    target = _whole(settings, "target_utilization_percentage", 70, low=1, high=100)
    if minimum > maximum:
        raise ApplicationError(
            f"scale_settings.min_instances ({minimum}) must not exceed scale_settings.max_instances ({maximum})",
            field="scale_settings.min_instances",
        )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec, options),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": object_name(spec)},
            "minReplicas": minimum,
            "maxReplicas": maximum,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}},
                }
            ],
        },
    }


# --- containers ---


def _restricted() -> dict[str, Any]:
    """A container's share of Pod Security's "restricted" level (the pod sets non-root and seccomp)."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _runtime_container(options: ManifestOptions) -> dict[str, Any]:
    """Copies the self-contained runtime into the pod, so the inference server needs nothing from its image."""
    return {
        "name": "studio-runtime",
        "image": options.initializer_image or options.runtime_image,
        "command": list(RUNTIME_COPY_COMMAND),
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
        "securityContext": _restricted(),
        "volumeMounts": [{"name": "studio-runtime", "mountPath": RUNTIME_DIR}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _initializer_container(spec: DeploymentSpec, options: ManifestOptions, name: str) -> dict[str, Any]:
    fetch = _downloads(spec, options)
    base = f"{options.studio_url}{DOWNLOADS_PATH}"
    env: list[dict[str, Any]] = [
        {"name": "STUDIO_MODEL_URL", "value": f"{base}/model/{spec.model_uid}" if "model" in fetch else ""},
        {"name": "STUDIO_MODEL_DIR", "value": _model_dir(spec) if spec.model_asset else ""},
        {"name": "STUDIO_CODE_URL", "value": f"{base}/code/{spec.code_digest}" if "code" in fetch else ""},
        {"name": "STUDIO_CODE_DIR", "value": CODE_DIR if spec.code_root else ""},
    ]
    if spec.code_root and spec.scoring_script:
        # Checked in the init container, so a missing script fails with its name before the server starts.
        env.append({"name": "STUDIO_ENTRY_SCRIPT", "value": spec.scoring_script})
    if fetch:
        env.append({"name": TOKEN_KEY, "valueFrom": {"secretKeyRef": {"name": name, "key": TOKEN_KEY}}})
    return {
        "name": "storage-initializer",
        "image": options.initializer_image or options.runtime_image,
        "command": list(STORAGE_INITIALIZER_COMMAND),
        "env": env,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "securityContext": _restricted(),
        "volumeMounts": [{"name": "app", "mountPath": APP_ROOT}],
        # The last log lines become the termination message: the failure reason can quote them.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _inference_container(spec: DeploymentSpec, options: ManifestOptions, name: str, port: int) -> dict[str, Any]:
    args = ["--port", str(port)]
    if spec.scoring_script:
        args = ["--entry_script", f"{CODE_DIR}/{spec.scoring_script}", *args]
    if spec.model_asset:
        args = [*args, "--model_dir", _model_dir(spec)]
    requirements = _pip_requirements(spec)
    resources = resources_of(spec)
    resources.setdefault("requests", {})["ephemeral-storage"] = _quantity_mi(_app_bytes(spec) + SCRATCH_BYTES)
    liveness = _route(spec, "liveness_route", port)
    container: dict[str, Any] = {
        "name": "inference-server",
        "image": spec.environment.image or options.runtime_image,
        # The launcher runs the runtime with the image's own Python (installing the pip requirements first).
        "command": [RUNTIME_LAUNCHER, *args],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": _container_env(spec, name, requirements),
        "resources": resources,
        "startupProbe": _startup_probe(spec.liveness_probe, liveness),
        "livenessProbe": _probe(spec.liveness_probe, liveness, liveness=True),
        "readinessProbe": _probe(spec.readiness_probe, _route(spec, "readiness_route", port), liveness=False),
        # Endpoints drop a terminating pod only eventually: keep serving until every gateway has stopped routing.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_S}}},
        "securityContext": _restricted(),
        "volumeMounts": [{"name": "app", "mountPath": APP_ROOT}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if _is_custom_container(spec):
        # As on Azure, a custom container (inference_config routes) runs its image's own entrypoint.
        del container["command"]
    else:
        container["volumeMounts"].append({"name": "studio-runtime", "mountPath": RUNTIME_DIR, "readOnly": True})
    extra_ports = {_route(spec, key, port)[0] for key in ("liveness_route", "readiness_route")} - {port}
    for extra in sorted(extra_ports):
        container["ports"].append({"containerPort": extra, "protocol": "TCP"})
    return container


def _container_env(spec: DeploymentSpec, name: str, requirements: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "AML_APP_ROOT", "value": CODE_DIR},
        {"name": "AZUREML_SOURCE_DIRECTORY", "value": CODE_DIR},
        # The runtime finishes requests in flight this long after SIGTERM (within the grace period).
        {"name": "STUDIO_DRAIN_S", "value": str(drain_s(spec))},
    ]
    if spec.scoring_script:
        env.append({"name": "AZUREML_ENTRY_SCRIPT", "value": spec.scoring_script})
    if spec.model_asset:
        env.append({"name": "AZUREML_MODEL_DIR", "value": _model_dir(spec)})
    if requirements:
        env.append({"name": "STUDIO_PIP_REQUIREMENTS", "value": requirements})
    sensitive = _sensitive_env(spec)
    for key in sorted(spec.environment_variables):
        if not ENV_NAME.match(key):
            raise ApplicationError(
                f"environment_variables: {key!r} is not a valid variable name", field="environment_variables"
            )
        if key in sensitive:
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
        else:
            env.append({"name": key, "value": str(spec.environment_variables[key])})
    return env


def resources_of(spec: DeploymentSpec) -> dict[str, dict[str, str]]:
    """Requests and limits: the deployment's own `resources`, else sized from its instance type.

    Limits are the instance type's size. Requests are what a node of that size can actually give a pod
    (`allocatable_share`), so one instance fits on one node of its size: a request of the whole size never does.
    """
    if spec.resources:
        result = {
            kind: {key: str(value) for key, value in spec.resources.get(kind, {}).items()}
            for kind in ("requests", "limits")
            if spec.resources.get(kind)
        }
        unknown = set(spec.resources) - {"requests", "limits"}
        if unknown:
            raise ApplicationError(f"resources: unknown key {sorted(unknown)[0]!r}", field="resources")
        for resource_name, requested in result.get("requests", {}).items():
            limit = result.get("limits", {}).get(resource_name)
            if limit is not None and parse_quantity(requested) > parse_quantity(limit):
                raise ApplicationError(
                    f"resources.requests.{resource_name} ({requested}) must not exceed "
                    f"resources.limits.{resource_name} ({limit})",
                    field=f"resources.requests.{resource_name}",
                )
        return result
    size = spec.instance_type
    memory = Decimal(str(size.memory_gib))
    quantity = f"{memory.normalize():f}Gi" if memory == memory.to_integral() else f"{int(memory * 1024)}Mi"
    cpu_m, memory_mi = allocatable_share(size.vcpus, float(size.memory_gib))
    requests = {"cpu": f"{cpu_m}m", "memory": f"{memory_mi}Mi"}
    limits = {"cpu": str(size.vcpus), "memory": quantity}
    if size.gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(size.gpus)
    return {"requests": requests, "limits": limits}


def allocatable_share(vcpus: int, memory_gib: float) -> tuple[int, int]:
    """(millicores, MiB) one pod can request on a node of this size (docs/kubernetes.md states the rule).

    CPU: the kubelet's reservation (6 % of the first core, 1 % of the second, 0.5 % of the next two,
    0.25 % of the rest) and 100m for the node's DaemonSets. Memory: the reservation (25 % of the first
    4 GiB, 20 % of the next 4, 10 % of the next 8, 6 % of the next 112, 2 % of the rest), the 750 MiB
    eviction threshold, and a tenth of what remains for the DaemonSets. Rounded down; at least 100m / 128 MiB.
    """
    cores = Decimal(vcpus)
    reserved_cpu = Decimal(0)
    lower = Decimal(0)
    for upper_cores, share in ((1, "0.06"), (2, "0.01"), (4, "0.005"), (10**6, "0.0025")):
        if cores > lower:
            reserved_cpu += (min(cores, Decimal(upper_cores)) - lower) * Decimal(share)
        lower = Decimal(upper_cores)
    cpu_m = int((cores - reserved_cpu) * 1000) - 100
    memory_mi = Decimal(str(memory_gib)) * 1024
    reserved_mi = Decimal(0)
    lower = Decimal(0)
    for upper_gib, share in ((4, "0.25"), (8, "0.20"), (16, "0.10"), (128, "0.06"), (10**6, "0.02")):
        upper = Decimal(upper_gib) * 1024
        if memory_mi > lower:
            reserved_mi += (min(memory_mi, upper) - lower) * Decimal(share)
        lower = upper
    remaining = (memory_mi - reserved_mi - 750) * Decimal("0.9")
    return max(100, cpu_m // 10 * 10), max(128, int(remaining))


_SUFFIXES: dict[str, int | Decimal] = {
    "": 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def parse_quantity(text: str | int | float) -> Decimal:
    """A Kubernetes quantity ("500m", "2", "1.5Gi", "1e3") as a number; ApplicationError when malformed."""
    match = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)", str(text).strip())
    if match is None or match.group(2) not in _SUFFIXES:
        raise ApplicationError(f"resources: {text!r} is not a Kubernetes quantity", field="resources")
    try:
        return Decimal(match.group(1)) * Decimal(_SUFFIXES[match.group(2)])
    except InvalidOperation:
        raise ApplicationError(f"resources: {text!r} is not a Kubernetes quantity", field="resources") from None


def _probe(probe: ProbeSpec, route: tuple[int, str], *, liveness: bool) -> dict[str, Any]:
    field = "liveness_probe" if liveness else "readiness_probe"
    if liveness and probe.success_threshold != 1:
        raise ApplicationError(
            f"liveness_probe.success_threshold must be 1, got {probe.success_threshold}",
            field="liveness_probe.success_threshold",
        )
    for key in ("initial_delay", "period", "timeout", "success_threshold", "failure_threshold"):
        if getattr(probe, key) < 1:
            raise ApplicationError(
                f"{field}.{key} must be at least 1, got {getattr(probe, key)}", field=f"{field}.{key}"
            )
    port, path = route
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": probe.initial_delay,
        "periodSeconds": probe.period,
        "timeoutSeconds": probe.timeout,
        "successThreshold": probe.success_threshold,
        "failureThreshold": probe.failure_threshold,
    }


def _startup_failures(probe: ProbeSpec) -> int:
    return max(probe.failure_threshold, math.ceil(STARTUP_BUDGET_S / probe.period))


def _startup_probe(probe: ProbeSpec, route: tuple[int, str]) -> dict[str, Any]:
    """Holds the liveness probe off while init() loads the model (at least STARTUP_BUDGET_S), then steps aside."""
    port, path = route
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": probe.initial_delay,
        "periodSeconds": probe.period,
        "timeoutSeconds": probe.timeout,
        "successThreshold": 1,
        "failureThreshold": _startup_failures(probe),
    }


def _route(spec: DeploymentSpec, key: str, default_port: int) -> tuple[int, str]:
    """(port, path) of an inference_config route; the runtime answers liveness and readiness on `GET /`."""
    config = spec.environment.inference_config or {}
    route = config.get(key) if isinstance(config, Mapping) else None
    if not isinstance(route, Mapping):
        return default_port, "/"
    port = route.get("port", default_port)
    path = str(route.get("path", "/")) or "/"
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ApplicationError(
            f"environment.inference_config.{key}.port must be 1-65535, got {port!r}",
            field=f"inference_config.{key}.port",
        )
    return port, path if path.startswith("/") else f"/{path}"


def _is_custom_container(spec: DeploymentSpec) -> bool:
    config = spec.environment.inference_config
    return isinstance(config, Mapping) and isinstance(config.get("scoring_route"), Mapping)


def _scoring_port(spec: DeploymentSpec) -> int:
    return _route(spec, "scoring_route", DEFAULT_PORT)[0]


def _downloads(spec: DeploymentSpec, options: ManifestOptions) -> set[str]:
    """What the storage initializer fetches from the studio: "model", "code", both or neither."""
    if not options.studio_url:
        return set()
    wanted = set()
    if spec.model_asset and spec.model_uid:
        wanted.add("model")
    if spec.code_root and spec.code_digest:
        wanted.add("code")
    return wanted


def _app_bytes(spec: DeploymentSpec) -> int:
    """The shared volume's size limit: model and code, and room for what the scoring script writes beside them."""
    return spec.model_size + spec.code_size + 256 * 1024**2


def _quantity_mi(size: int) -> str:
    return f"{max(1, math.ceil(size / 1024**2))}Mi"


def _model_dir(spec: DeploymentSpec) -> str:
    """Where AZUREML_MODEL_DIR points, as on Azure: azureml-models/<name>/<version>."""
    return f"{MODELS_DIR}/{model_subdir(spec.model_asset or 'model')}"


def _pip_requirements(spec: DeploymentSpec) -> str:
    lines = [line.strip() for line in spec.environment.pip_requirements.splitlines() if line.strip()]
    conda = spec.environment.conda_file or {}
    dependencies = conda.get("dependencies") if isinstance(conda, Mapping) else None
    for dependency in dependencies if isinstance(dependencies, list) else []:
        if isinstance(dependency, Mapping) and isinstance(dependency.get("pip"), list):
            lines.extend(str(item) for item in dependency["pip"])
    return "\n".join(line for line in lines if not line.startswith("#"))


def _sensitive_env(spec: DeploymentSpec) -> dict[str, str]:
    return {key: str(value) for key, value in spec.environment_variables.items() if SENSITIVE_NAME.search(key)}


def _metadata(spec: DeploymentSpec, options: ManifestOptions, *, annotations: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": object_name(spec), "namespace": options.namespace, "labels": labels(spec)}
    if annotations:
        metadata["annotations"] = {
            f"{LABEL_PREFIX}generation": str(spec.generation),
            f"{LABEL_PREFIX}endpoint-name": spec.endpoint_name,
            f"{LABEL_PREFIX}deployment-name": spec.name,
            f"{LABEL_PREFIX}model": spec.model_asset or "",
            f"{LABEL_PREFIX}environment": f"azureml:{spec.environment.name}:{spec.environment.version}",
        }
    return metadata


def _label_value(text: str) -> str:
    """A label value (63 characters of [A-Za-z0-9-_.], alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return value.strip("-_.")


def _checksum(values: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(values), sort_keys=True).encode()).hexdigest()[:16]


def _whole(settings: Mapping[str, object], key: str, default: int, *, low: int, high: int | None = None) -> int:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f"{low}-{high}" if high is not None else f"at least {low}"
        raise ApplicationError(
            f"scale_settings.{key} must be a whole number {bounds}, got {value!r}", field=f"scale_settings.{key}"
        )
    return value

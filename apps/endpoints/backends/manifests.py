"""Pure builders: one `DeploymentSpec` in, the Kubernetes objects that run it out (plain dicts).

Per studio deployment: a Secret (sensitive variables and the signed download URLs), a Deployment
(init container `storage-initializer`, main container `inference-server`), a Service, and an
autoscaling/v2 HorizontalPodAutoscaler when `scale_settings.type` is `target_utilization`.
Nothing here talks to a cluster or reads settings, except `options_from_settings`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from django.conf import settings

from apps.core.errors import ApplicationError
from apps.endpoints.backends.base import DeploymentSpec, ProbeSpec
from apps.endpoints.backends.signed_urls import sign_download
from runtime.storage_initializer import MODELS_FOLDER, model_subdir

Manifest = dict[str, Any]

LABEL_PREFIX = "studio.ml/"
MANAGED_BY = {"app.kubernetes.io/managed-by": "studio", "app.kubernetes.io/part-of": "studio"}
APP_ROOT = "/var/azureml-app"
CODE_DIR = f"{APP_ROOT}/code"
MODELS_DIR = f"{APP_ROOT}/{MODELS_FOLDER}"
DEFAULT_PORT = 5001
SERVICE_PORT = 80
MODEL_URL_KEY = "STUDIO_MODEL_URL"
CODE_URL_KEY = "STUDIO_CODE_URL"
# Names that look like credentials go to the Secret, not into the pod spec in clear.
SENSITIVE_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|CONNECTION_STRING|PRIVATE)", re.IGNORECASE)
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# Room for the "-<replicaset hash>-<pod suffix>" Kubernetes appends to pod names.
MAX_NAME = 47

# The init container's command: the runtime package's storage initializer (downloads and unpacks the
# model and code archives, refusing entries outside their folder, all or nothing; see its module).
STORAGE_INITIALIZER_COMMAND = ["python", "-m", "runtime.storage_initializer"]


@dataclass(frozen=True)
class ManifestOptions:
    """What the manifests need besides the spec: where they run and how pods reach the studio."""

    namespace: str = "studio"
    runtime_image: str = "ghcr.io/studio-ml/runtime:0.1.0"  # used when the environment names no image
    initializer_image: str = ""  # any image with the studio's runtime package; "" = runtime_image
    model_url: str = ""  # signed download URL of the model archive ("" = no model)
    code_url: str = ""  # signed download URL of the code archive ("" = no code)
    image_pull_secrets: tuple[str, ...] = ()


def object_name(spec: DeploymentSpec) -> str:
    """The name shared by the deployment's Kubernetes objects: `<endpoint>-<deployment>`, a DNS-1035 label."""
    name = f"{spec.endpoint_name}-{spec.name}".lower()
    name = re.sub(r"[^a-z0-9-]+", "-", name).strip("-")
    if len(name) > MAX_NAME or not name[:1].isalpha():
        digest = hashlib.sha256(spec.uid.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9].rstrip('-')}-{digest}"
        if not name[:1].isalpha():
            name = f"d{name}"[:MAX_NAME]
    return name


def selector_labels(spec: DeploymentSpec) -> dict[str, str]:
    """The immutable labels that pick this deployment's pods."""
    return {f"{LABEL_PREFIX}deployment-uid": spec.uid}


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


def build_manifests(spec: DeploymentSpec, options: ManifestOptions) -> list[Manifest]:
    """Every object of the deployment, in apply order (Secret first: the pods read it at start)."""
    manifests = [build_secret(spec, options), build_deployment(spec, options), build_service(spec, options)]
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
    """Writes multi-line strings (pip requirements, the install command) as readable `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def options_from_settings(spec: DeploymentSpec, *, ttl_s: int | None = None) -> ManifestOptions:
    """Options from the studio's settings, with freshly signed download URLs for the spec's model and code."""
    ttl = ttl_s or settings.STUDIO_KUBE_DOWNLOAD_TTL_S
    base = (settings.STUDIO_KUBE_STUDIO_URL or settings.STUDIO_PUBLIC_URL).rstrip("/")
    model_url = code_url = ""
    if spec.model_asset:
        model_url = f"{base}/api/v1/downloads/{sign_download('model', spec.model_asset, ttl)}"
    if spec.code_root:
        code_url = f"{base}/api/v1/downloads/{sign_download('code', spec.uid, ttl)}"
    defaults = ManifestOptions()
    return ManifestOptions(
        namespace=settings.STUDIO_KUBE_NAMESPACE or defaults.namespace,
        runtime_image=settings.STUDIO_KUBE_RUNTIME_IMAGE or defaults.runtime_image,
        initializer_image=settings.STUDIO_KUBE_INITIALIZER_IMAGE or defaults.initializer_image,
        model_url=model_url,
        code_url=code_url,
        image_pull_secrets=tuple(settings.STUDIO_KUBE_IMAGE_PULL_SECRETS),
    )


# --- the objects ---


def build_secret(spec: DeploymentSpec, options: ManifestOptions) -> Manifest:
    """Sensitive variables and the signed download URLs; rewriting it never restarts a pod."""
    data = {name: value for name, value in _sensitive_env(spec).items()}
    if options.model_url:
        data[MODEL_URL_KEY] = options.model_url
    if options.code_url:
        data[CODE_URL_KEY] = options.code_url
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(spec, options),
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in sorted(data.items())},
    }


def build_deployment(spec: DeploymentSpec, options: ManifestOptions) -> Manifest:
    """The apps/v1 Deployment: storage-initializer, then inference-server; rolls with maxUnavailable 0."""
    name = object_name(spec)
    port = _scoring_port(spec)
    pod_spec: dict[str, Any] = {
        "initContainers": [_initializer_container(spec, options, name)],
        "containers": [_inference_container(spec, options, name, port)],
        "volumes": [{"name": "app", "emptyDir": {}}],
    }
    if options.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": secret} for secret in options.image_pull_secrets]
    template = {"metadata": {"labels": labels(spec)}, "spec": pod_spec}
    # A change of sensitive values must restart the pods (they read env at start); a change of
    # the download URLs must not, so only the former feeds the checksum.
    template["metadata"]["annotations"] = {f"{LABEL_PREFIX}env-checksum": _checksum(_sensitive_env(spec))}
    # Pods carry the hash of the template they were made from, so status can tell current from stale.
    template["metadata"]["annotations"][f"{LABEL_PREFIX}template-hash"] = _checksum({"t": json.dumps(template)})
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(spec)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": template,
    }
    if not uses_autoscaler(spec):
        # With an HPA the field is left unset so server-side apply leaves the replica count to it.
        deployment_spec = {"replicas": spec.instance_count, **deployment_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec, options, annotations=True),
        "spec": deployment_spec,
    }


def template_hash(spec: DeploymentSpec, options: ManifestOptions) -> str:
    """The hash the current pod template's pods carry in their `template-hash` annotation."""
    template = build_deployment(spec, options)["spec"]["template"]
    return str(template["metadata"]["annotations"][f"{LABEL_PREFIX}template-hash"])


def build_service(spec: DeploymentSpec, options: ManifestOptions) -> Manifest:
    """A ClusterIP Service in front of the ready pods: `http://<name>.<namespace>.svc`."""
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


def _initializer_container(spec: DeploymentSpec, options: ManifestOptions, name: str) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "STUDIO_MODEL_DIR", "value": _model_dir(spec) if spec.model_asset else ""},
        {"name": "STUDIO_CODE_DIR", "value": CODE_DIR if spec.code_root else ""},
    ]
    if spec.code_root and spec.scoring_script:
        # Checked in the init container, so a missing script fails with its name before the server starts.
        env.append({"name": "STUDIO_ENTRY_SCRIPT", "value": spec.scoring_script})
    for key in (MODEL_URL_KEY, CODE_URL_KEY):
        env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": name, "key": key, "optional": True}}})
    return {
        "name": "storage-initializer",
        "image": options.initializer_image or options.runtime_image,
        "command": list(STORAGE_INITIALIZER_COMMAND),
        "env": env,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
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
    if requirements:
        # No image build on the cluster: install the environment's pip packages at container start.
        command = [
            "sh",
            "-c",
            'printf "%s\\n" "$STUDIO_PIP_REQUIREMENTS" > /tmp/requirements.txt'
            " && python -m pip install --no-cache-dir --quiet -r /tmp/requirements.txt"
            ' && exec studio-infsrv "$@"',
            "studio-infsrv",
            *args,
        ]
    else:
        command = ["studio-infsrv", *args]
    container: dict[str, Any] = {
        "name": "inference-server",
        "image": spec.environment.image or options.runtime_image,
        "command": command,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": _container_env(spec, name, requirements),
        "resources": resources(spec),
        "livenessProbe": _probe(spec.liveness_probe, _route(spec, "liveness_route", port), liveness=True),
        "readinessProbe": _probe(spec.readiness_probe, _route(spec, "readiness_route", port), liveness=False),
        "volumeMounts": [{"name": "app", "mountPath": APP_ROOT}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if _is_custom_container(spec):
        # As on Azure, a custom container (inference_config routes) runs its image's own entrypoint.
        del container["command"]
    extra_ports = {_route(spec, key, port)[0] for key in ("liveness_route", "readiness_route")} - {port}
    for extra in sorted(extra_ports):
        container["ports"].append({"containerPort": extra, "protocol": "TCP"})
    return container


def _container_env(spec: DeploymentSpec, name: str, requirements: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "AML_APP_ROOT", "value": CODE_DIR},
        {"name": "AZUREML_SOURCE_DIRECTORY", "value": CODE_DIR},
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


def resources(spec: DeploymentSpec) -> dict[str, dict[str, str]]:
    """Requests and limits: the deployment's own `resources`, else the instance type's size."""
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
    sized = {"cpu": str(size.vcpus), "memory": quantity}
    if size.gpus:
        sized["nvidia.com/gpu"] = str(size.gpus)
    return {"requests": dict(sized), "limits": dict(sized)}


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

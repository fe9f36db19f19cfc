"""What a real API server and its controllers would reject: the official schemas, plus the semantic
rules the schemas cannot express. Used by the manifest tests and by the fake API server."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import kubernetes_validate
from kubernetes_validate.utils import latest_version

from apps.endpoints.backends.manifests import parse_quantity

# The oldest Kubernetes the studio supports, and the newest the installed schemas know.
VERSIONS = ("1.30.0", latest_version())

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def schema_errors(manifest: dict[str, Any], version: str) -> list[str]:
    """Messages from the official JSON schema of `version` in strict mode (unknown fields are errors)."""
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path)
        return [f"{manifest['kind']} {path}: {error.message}"]
    return []


def semantic_problems(manifests: Iterable[dict[str, Any]]) -> list[str]:
    """Rules the schemas miss: names, labels, selectors, ports, quantities, HPA bounds, references."""
    problems: list[str] = []
    objects = list(manifests)
    by_kind = {(m["kind"], m["metadata"]["name"]): m for m in objects}
    for manifest in objects:
        kind, meta = manifest["kind"], manifest["metadata"]
        name = meta["name"]
        rule = DNS1035_LABEL if kind == "Service" else DNS1123_SUBDOMAIN
        if not rule.match(name) or len(name) > (63 if kind == "Service" else 253):
            problems.append(f"{kind} name {name!r} is not a valid Kubernetes name")
        problems += _label_problems(kind, meta.get("labels", {}))
        if kind == "Deployment":
            problems += _deployment_problems(manifest, by_kind)
        if kind == "Service":
            selector = manifest["spec"]["selector"]
            targets = [
                m
                for m in objects
                if m["kind"] == "Deployment" and _selects(selector, m["spec"]["template"]["metadata"].get("labels", {}))
            ]
            if not targets:
                problems.append(f"Service {name} selector {selector} matches no pod template")
            for deployment in targets:
                containers = deployment["spec"]["template"]["spec"]["containers"]
                ports = {p.get("name") for c in containers for p in c.get("ports", [])}
                for port in manifest["spec"]["ports"]:
                    target = port.get("targetPort")
                    if isinstance(target, str) and target not in ports:
                        problems.append(f"Service {name} targetPort {target!r} is not a named container port")
        if kind == "HorizontalPodAutoscaler":
            spec = manifest["spec"]
            if spec.get("minReplicas", 1) > spec["maxReplicas"]:
                problems.append(f"HPA {name} minReplicas {spec.get('minReplicas')} > maxReplicas {spec['maxReplicas']}")
            target = spec["scaleTargetRef"]
            deployment = by_kind.get((target["kind"], target["name"]))
            if deployment is None:
                problems.append(f"HPA {name} scales {target['kind']} {target['name']}, which is not among the objects")
            elif "replicas" in deployment["spec"]:
                problems.append(f"Deployment {target['name']} sets replicas although HPA {name} owns them")
            else:
                for container in deployment["spec"]["template"]["spec"]["containers"]:
                    if "cpu" not in container.get("resources", {}).get("requests", {}):
                        problems.append(f"HPA {name} scales on CPU but container {container['name']} requests none")
    return problems


def _deployment_problems(manifest: dict[str, Any], by_kind: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    name = manifest["metadata"]["name"]
    spec = manifest["spec"]
    template = spec["template"]
    if not _selects(spec["selector"], template["metadata"].get("labels", {})):
        problems.append(f"Deployment {name} selector does not match its pod template labels")
    problems += _label_problems("pod template", template["metadata"].get("labels", {}))
    pod = template["spec"]
    volumes = {volume["name"] for volume in pod.get("volumes", [])}
    names = [c["name"] for c in pod.get("initContainers", []) + pod["containers"]]
    if len(names) != len(set(names)):
        problems.append(f"Deployment {name} has two containers with one name: {names}")
    for container in pod.get("initContainers", []) + pod["containers"]:
        cname = container["name"]
        ports = container.get("ports", [])
        numbers = {p["containerPort"] for p in ports}
        named = {p["name"] for p in ports if "name" in p}
        for probe_key in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = container.get(probe_key)
            if not probe:
                continue
            port = (probe.get("httpGet") or probe.get("tcpSocket") or {}).get("port")
            if port is not None and port not in numbers and port not in named:
                problems.append(f"{cname} {probe_key} port {port!r} is not a container port")
        if container.get("livenessProbe", {}).get("successThreshold", 1) != 1:
            problems.append(f"{cname} livenessProbe successThreshold must be 1")
        resources = container.get("resources", {})
        for resource, requested in resources.get("requests", {}).items():
            limit = resources.get("limits", {}).get(resource)
            if limit is not None and parse_quantity(requested) > parse_quantity(limit):
                problems.append(f"{cname} requests {resource}={requested} above its limit {limit}")
        for resource in resources.get("limits", {}):
            if "." in resource and "/" in resource:  # extended resources (GPUs) cannot overcommit
                if (
                    resources.get("requests", {}).get(resource, resources["limits"][resource])
                    != resources["limits"][resource]
                ):
                    problems.append(f"{cname} {resource} request must equal its limit")
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                problems.append(f"{cname} mounts unknown volume {mount['name']!r}")
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                secret = by_kind.get(("Secret", ref["name"]))
                if secret is None or ref["key"] not in secret.get("data", {}):
                    problems.append(f"{cname} env {env['name']} needs key {ref['key']} of Secret {ref['name']}")
    strategy = spec.get("strategy", {}).get("rollingUpdate", {})
    if strategy.get("maxUnavailable") == 0 and strategy.get("maxSurge") == 0:
        problems.append(f"Deployment {name} can never roll: maxUnavailable and maxSurge are both 0")
    return problems


def _label_problems(where: str, labels: dict[str, str]) -> list[str]:
    problems = []
    for key, value in labels.items():
        prefix, _, local = key.rpartition("/")
        if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
            problems.append(f"{where} label key {key!r} has an invalid prefix")
        if len(local) > 63 or not LABEL_NAME.match(local):
            problems.append(f"{where} label key {key!r} is invalid")
        if len(value) > 63 or not LABEL_VALUE.match(value):
            problems.append(f"{where} label {key}={value!r} has an invalid value")
    return problems


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    match_labels = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    return bool(match_labels) and all(labels.get(key) == value for key, value in match_labels.items())

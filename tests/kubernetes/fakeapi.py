"""A fake Kubernetes API server: kmock's emulator, extended where it falls short of a real one.

kmock stores objects and serves get/list/create/patch/delete over real HTTP. What a real API
server also does, and the backend relies on, is added here:

- server-side apply (PATCH `application/apply-patch+yaml`): requires `fieldManager`, creates the
  object when missing, and removes the fields the same manager applied before but no longer does;
- validation: the official strict schema (kubernetes-validate, 1.30) plus the API server's own
  rules the schema cannot express → 422 `Invalid`, nothing stored;
- 409 `Conflict` for a create of an existing object and for a stale `metadata.resourceVersion`;
- 404 for a namespace that does not exist;
- `labelSelector` (=, ==, !=) and `fieldSelector` (metadata.name, involvedObject.*) on lists;
- `pods/<name>/log` as plain text per container, with `tailLines` and `previous`, and the real
  server's 400s for an unknown container or a missing previous run;
- foreground deletion: the object lingers with a `foregroundDeletion` finalizer until the test,
  playing the garbage collector, calls `collect_garbage()`;
- server-filled metadata: uid, resourceVersion, generation, creationTimestamp;
- the metrics API (`metrics.k8s.io/v1beta1` PodMetrics, list with `labelSelector`) once the test
  has called `install_metrics_server()`; before that 404, as a cluster without metrics-server.

No controllers run: the tests create pods and write their status themselves.
The server runs on its own event loop in a thread, so the synchronous `kubernetes` client can
call it from the test's thread.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import enums, rendering
from kmock._internal.k8s import KubernetesError

from tests.kubernetes.checks import schema_errors

APPLY = "application/apply-patch+yaml"
KINDS = {
    ("", "v1", "pods"): "Pod",
    ("", "v1", "services"): "Service",
    ("", "v1", "secrets"): "Secret",
    ("", "v1", "events"): "Event",
    ("apps", "v1", "deployments"): "Deployment",
    ("autoscaling", "v2", "horizontalpodautoscalers"): "HorizontalPodAutoscaler",
    ("metrics.k8s.io", "v1beta1", "pods"): "PodMetrics",
}
METRICS_GROUP = "metrics.k8s.io"


@dataclass
class Call:
    """One request the client made, for assertions."""

    method: str
    path: str
    params: dict[str, str]
    content_type: str
    body: Any = None

    @property
    def kind(self) -> str:
        for (group, version, plural), kind in KINDS.items():
            prefix = f"/apis/{group}/{version}/" if group else "/api/v1/"
            if self.path.startswith(prefix) and f"/{plural}" in self.path:
                return kind
        return ""


@attrs.define(kw_only=True)
class FakeApiServer(kmock.KubernetesEmulator):
    """kmock's emulator plus the behaviour of a real API server listed in the module docstring."""

    namespaces: set[str] = attrs.field(factory=lambda: {"studio"})
    calls: list[Call] = attrs.field(factory=list)
    logs: dict[tuple[str, str, bool], str] = attrs.field(factory=dict)
    failures: list[tuple[Callable[[Call], bool], int, str]] = attrs.field(factory=list)
    metrics_server: bool = False
    _applied: dict[tuple[Any, str | None, str], dict[str, Any]] = attrs.field(factory=dict)
    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1000))

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        content_type = request.headers.get("Content-Type", "")
        call = Call(request.method.value, request.url.path, dict(request.params), content_type, request.data)
        self.calls.append(call)
        for matches, status, message in list(self.failures):
            if matches(call):
                self.failures.remove((matches, status, message))
                raise KubernetesError(status=status, reason=_reason(status), message=message)
        if request.resource is None:
            return await super()._handle(request)
        if request.resource.group == METRICS_GROUP and not self.metrics_server:
            # What an API server without the metrics APIService answers: a plain 404, not a Status.
            return aiohttp.web.Response(status=404, text="404 page not found\n", content_type="text/plain")
        if request.namespace is not None and request.namespace not in self.namespaces:
            raise KubernetesError(status=404, reason="NotFound", message=f'namespaces "{request.namespace}" not found')
        if request.subresource == "log":
            return self._serve_log(request)
        if request.action == enums.action.LIST:
            return aiohttp.web.json_response(self._list(request))
        if request.method == enums.method.PATCH and content_type.startswith(APPLY):
            return self._apply(request)
        if request.action == enums.action.CREATE:
            self._validate(request.data)
            key = (request.resource, request.namespace, request.data["metadata"]["name"])
            if key in self.objects and not self.objects[key].deleted:
                raise KubernetesError(status=409, reason="AlreadyExists", message=f'"{key[2]}" already exists')
            self.objects[key] = self._stamp(request.data, None)
            return aiohttp.web.json_response(self.objects[key].raw, status=201)
        if request.action == enums.action.UPDATE and request.name is not None:
            self._check_version(request)
        if request.action == enums.action.DELETE and request.name is not None:
            policy = request.params.get("propagationPolicy") or (request.data or {}).get("propagationPolicy")
            key = (request.resource, request.namespace, request.name)
            if policy == "Foreground" and key in self.objects and not self.objects[key].deleted:
                finalizers = self.objects[key].get("metadata", {}).get("finalizers") or []
                self.objects[key].patch({"metadata": {"finalizers": [*finalizers, "foregroundDeletion"]}})
        return await super()._handle(request)

    # --- server-side apply ---

    def _apply(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        manager = request.params.get("fieldManager")
        if not manager:
            raise KubernetesError(
                status=422,
                reason="Invalid",
                message='PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch",
            )
        body = request.data if isinstance(request.data, dict) else yaml.safe_load(request.text)
        if body.get("metadata", {}).get("name") != request.name:
            raise KubernetesError(
                status=400, reason="BadRequest", message="the name of the object does not match the URL"
            )
        self._validate(body)
        key = (request.resource, request.namespace, request.name)
        previous = self._applied.get(key)
        if key not in self.objects or self.objects[key].deleted:
            self.objects[key] = self._stamp(body, None)
            self._applied[key] = copy.deepcopy(body)
            return aiohttp.web.json_response(self.objects[key].raw, status=201)
        current = copy.deepcopy(self.objects[key].raw)
        for path in _leaves(previous or {}) - _leaves(body):
            _remove(current, path)  # fields this manager applied before and has now dropped
        merged = _merge(current, body)
        self.objects[key] = self._stamp(merged, self.objects[key].raw)
        self._applied[key] = copy.deepcopy(body)
        return aiohttp.web.json_response(self.objects[key].raw, status=200)

    def _validate(self, body: dict[str, Any]) -> None:
        errors = schema_errors(body, "1.30.0")
        kind, name = body.get("kind"), body.get("metadata", {}).get("name")
        if kind == "Deployment":
            spec = body.get("spec", {})
            selector = spec.get("selector", {}).get("matchLabels", {})
            labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
            if any(labels.get(k) != v for k, v in selector.items()):
                errors.append(
                    "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"
                )
            containers = spec.get("template", {}).get("spec", {}).get("containers", [])
            for index, container in enumerate(containers):
                image = container.get("image", "")
                if image != image.strip():
                    errors.append(
                        f"spec.template.spec.containers[{index}].image: Invalid value: {image!r}: "
                        "must not have leading or trailing whitespace"
                    )
        if errors:
            group = {"Deployment": ".apps", "HorizontalPodAutoscaler": ".autoscaling"}.get(str(kind), "")
            raise KubernetesError(
                status=422, reason="Invalid", message=f'{kind}{group} "{name}" is invalid: ' + "; ".join(errors)
            )

    def _check_version(self, request: rendering.Request) -> None:
        wanted = ((request.data or {}).get("metadata") or {}).get("resourceVersion")
        key = (request.resource, request.namespace, request.name)
        if wanted and key in self.objects and not self.objects[key].deleted:
            stored = self.objects[key].get("metadata", {}).get("resourceVersion")
            if wanted != stored:
                raise KubernetesError(
                    status=409,
                    reason="Conflict",
                    message=f'Operation cannot be fulfilled on "{request.name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                )

    def _stamp(self, body: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        old_meta = (previous or {}).get("metadata", {})
        meta["uid"] = old_meta.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = old_meta.get("creationTimestamp") or _now()
        meta["resourceVersion"] = str(next(self._versions))
        generation = old_meta.get("generation", 0)
        meta["generation"] = generation + 1 if (previous or {}).get("spec") != obj.get("spec") else generation
        return obj

    # --- reads ---

    def _list(self, request: rendering.Request) -> dict[str, Any]:
        labels = _parse_selector(request.params.get("labelSelector", ""))
        fields = _parse_selector(request.params.get("fieldSelector", ""))
        items = []
        for (resource, namespace, _name), obj in self.objects.items():
            if resource != request.resource or obj.deleted:
                continue
            if request.namespace is not None and namespace != request.namespace:
                continue
            raw = obj.raw
            if _selected(raw.get("metadata", {}).get("labels") or {}, labels) and _fields_match(raw, fields):
                items.append(raw)
        kind = KINDS.get((request.resource.group, request.resource.version, request.resource.plural), "")
        return {
            "apiVersion": "/".join(p for p in (request.resource.group, request.resource.version) if p),
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(next(self._versions))},
            "items": sorted(items, key=lambda item: item["metadata"]["name"]),
        }

    def _serve_log(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            raise KubernetesError(status=404, reason="NotFound", message=f'pods "{request.name}" not found')
        pod = self.objects[key].raw
        names = [c["name"] for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]]
        container = request.params.get("container") or (names[0] if len(names) == 1 else "")
        if not container:
            raise KubernetesError(
                status=400,
                reason="BadRequest",
                message=f"a container name must be specified for pod {request.name}, choose one of: {names}",
            )
        if container not in names:
            raise KubernetesError(
                status=400, reason="BadRequest", message=f"container {container} is not valid for pod {request.name}"
            )
        previous = request.params.get("previous") == "true"
        if (request.name, container, previous) not in self.logs:
            if previous:
                message = f'previous terminated container "{container}" in pod "{request.name}" not found'
            else:
                message = f'container "{container}" in pod "{request.name}" is waiting to start: PodInitializing'
            raise KubernetesError(status=400, reason="BadRequest", message=message)
        text = self.logs[(request.name, container, previous)]
        tail = request.params.get("tailLines")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail) :]) if int(tail) > 0 else ""
        return aiohttp.web.Response(text=text, content_type="text/plain")


class FakeCluster:
    """The fake API server on a background event loop, and the test's hands as the cluster's controllers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-kube-api", daemon=True)
        self.api: FakeApiServer
        self.server: kmock.Server

    def __enter__(self) -> FakeCluster:
        self.thread.start()
        self._run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self._run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    async def _start(self) -> None:
        self.api = FakeApiServer()
        await self.api.__aenter__()
        self.server = kmock.Server(self.api)
        await self.server.__aenter__()

    async def _stop(self) -> None:
        await self.server.__aexit__(None, None, None)
        await self.api.__aexit__(None, None, None)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def _sync(self, function: Callable[[], Any]) -> Any:
        async def call() -> Any:
            return function()

        return self._run(call())

    @property
    def url(self) -> str:
        return str(self.server.url).rstrip("/")

    def write_kubeconfig(self, path: Path, *, context: str = "fake", extra_context: str | None = None) -> Path:
        """A kubeconfig whose `context` points here (and an `extra_context` pointing nowhere)."""
        clusters = [{"name": "fake", "cluster": {"server": self.url}}]
        contexts = [{"name": context, "context": {"cluster": "fake", "user": "tester", "namespace": "studio"}}]
        if extra_context:
            clusters.append({"name": "nowhere", "cluster": {"server": "http://127.0.0.1:9"}})
            contexts.append({"name": extra_context, "context": {"cluster": "nowhere", "user": "tester"}})
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": clusters,
            "contexts": contexts,
            "users": [{"name": "tester", "user": {"token": "fake-token"}}],
            "current-context": extra_context or context,
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # --- the test's view of the stored objects ---

    def get(self, kind: str, name: str, namespace: str = "studio") -> dict[str, Any] | None:
        """The stored object of that kind and name, or None."""

        def read() -> dict[str, Any] | None:
            key = (_resource(kind), namespace, name)
            if key not in self.api.objects or self.api.objects[key].deleted:
                return None
            return copy.deepcopy(self.api.objects[key].raw)

        return self._sync(read)

    def names(self, kind: str, namespace: str = "studio") -> list[str]:
        def read() -> list[str]:
            resource = _resource(kind)
            return sorted(
                n
                for (r, ns, n), obj in self.api.objects.items()
                if r == resource and ns == namespace and not obj.deleted
            )

        return self._sync(read)

    def put(self, obj: dict[str, Any]) -> None:
        """Store an object as a controller would (no validation): pods, events, status updates."""

        def write() -> None:
            meta = obj["metadata"]
            key = (_resource(obj["kind"]), meta.get("namespace", "studio"), meta["name"])
            existing = (
                self.api.objects[key].raw if key in self.api.objects and not self.api.objects[key].deleted else None
            )
            self.api.objects[key] = self.api._stamp(obj, existing)

        self._sync(write)

    def set_status(self, kind: str, name: str, status: dict[str, Any]) -> None:
        stored = self.get(kind, name)
        assert stored is not None, f"no {kind} {name}"
        stored["status"] = status
        self.put(stored)

    def collect_garbage(self) -> None:
        """Play the garbage collector: finish foreground deletions, with the dependants (pods) first."""

        def collect() -> None:
            for (resource, namespace, _name), obj in list(self.api.objects.items()):
                if obj.deleted or not obj.get("metadata", {}).get("deletionTimestamp"):
                    continue
                if obj.get("kind") == "Deployment" or resource.plural == "deployments":
                    selector = obj.raw["spec"]["selector"]["matchLabels"]
                    for (r, ns, _), pod in list(self.api.objects.items()):
                        labels = {} if pod.deleted else pod.get("metadata", {}).get("labels") or {}
                        if (
                            r.plural == "pods"
                            and ns == namespace
                            and all(labels.get(k) == v for k, v in selector.items())
                        ):
                            pod.delete()
                obj.delete()

        self._sync(collect)

    def fail_next(self, status: int, message: str, *, method: str, kind: str) -> None:
        """Make the next `method` request on `kind` answer `status` (a flaky or conflicting cluster)."""
        self._sync(
            lambda: self.api.failures.append(
                (lambda call: call.method == method and call.kind == kind, status, message)
            )
        )

    @property
    def calls(self) -> list[Call]:
        return self._sync(lambda: list(self.api.calls))

    def clear_calls(self) -> None:
        self._sync(self.api.calls.clear)

    def set_log(self, pod: str, container: str, text: str, *, previous: bool = False) -> None:
        self._sync(lambda: self.api.logs.__setitem__((pod, container, previous), text))

    def install_metrics_server(self) -> None:
        """Serve the metrics.k8s.io API from now on (the PodMetrics the test puts with `pod_metrics`)."""
        self._sync(lambda: setattr(self.api, "metrics_server", True))

    def pod_metrics(self, pod: str, usage: dict[str, tuple[str, str]], *, namespace: str = "studio") -> None:
        """Record a pod's usage per container, {"name": (cpu, memory)}, as metrics-server would: labels from the pod."""
        stored = self.get("Pod", pod, namespace)
        assert stored is not None, f"no pod {pod}"
        self.put(
            {
                "apiVersion": f"{METRICS_GROUP}/v1beta1",
                "kind": "PodMetrics",
                "metadata": {"name": pod, "namespace": namespace, "labels": stored["metadata"].get("labels", {})},
                "timestamp": _now(),
                "window": "15s",
                "containers": [
                    {"name": name, "usage": {"cpu": cpu, "memory": memory}} for name, (cpu, memory) in usage.items()
                ],
            }
        )


# --- helpers ---


def _resource(kind: str) -> kmock.resource:
    for (group, version, plural), known in KINDS.items():
        if known == kind:
            return kmock.resource(group, version, plural)
    raise KeyError(kind)


def _reason(status: int) -> str:
    return {409: "Conflict", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 403: "Forbidden"}.get(
        status, "Unknown"
    )


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_selector(text: str) -> list[tuple[str, str, str]]:
    terms = []
    for term in filter(None, (part.strip() for part in text.split(","))):
        for op in ("!=", "==", "="):
            if op in term:
                key, value = term.split(op, 1)
                terms.append((key.strip(), "!=" if op == "!=" else "=", value.strip()))
                break
        else:
            raise KubernetesError(status=400, reason="BadRequest", message=f"unable to parse requirement: {term!r}")
    return terms


def _selected(labels: dict[str, str], terms: list[tuple[str, str, str]]) -> bool:
    return all((labels.get(key) == value) == (op == "=") for key, op, value in terms)


def _fields_match(obj: dict[str, Any], terms: list[tuple[str, str, str]]) -> bool:
    for key, op, value in terms:
        node: Any = obj
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if (str(node) == value if node is not None else value == "") != (op == "="):
            return False
    return True


def _leaves(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = set()
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            paths |= _leaves(value, (*prefix, key))
        else:
            paths.add((*prefix, key))
    return paths


def _remove(tree: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = tree
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result

"""A fake Kubernetes API server over real HTTP: kmock's request parsing and error rendering, our own store.

What a real API server does, and the studio relies on, is reproduced here:

- server-side apply (PATCH `application/apply-patch+yaml`) with field managers: each manager owns the
  fields it applied; a field another manager owns with another value is a 409 conflict unless `force`;
  fields a manager stops applying are removed only when no other manager owns them; `managedFields`
  is kept in the object's metadata (`fieldsV1`, as the real server writes it);
- defaulting: a Deployment without `spec.replicas` gets 1 (what turns a dropped field into a scale-down);
- validation: the official strict schema (kubernetes-validate, 1.30) plus the API server's own rules the
  schema cannot express (selector matches template labels, selector immutable on update) → 422 `Invalid`;
- preconditions: `metadata.uid` in a patch and `preconditions.uid` in a delete must match → 409;
- 409 for a create of an existing object and for a stale `metadata.resourceVersion` on update;
- 404 for a namespace that does not exist;
- `labelSelector` (=, ==, !=) and `fieldSelector` on lists; `watch=true` streams ADDED/MODIFIED/DELETED
  from a resourceVersion, with `timeoutSeconds`, and 410 Gone for a version older than the history kept;
- events in both APIs: a core/v1 Event is also listed by events.k8s.io/v1 (converted as the real server
  does: `regarding`, `note`, `deprecatedCount`), and events.k8s.io events carry `series`;
- `pods/<name>/log` as plain text per container, with `tailLines` and `previous`;
- foreground deletion: the object lingers with a `foregroundDeletion` finalizer until the test, playing
  the garbage collector, calls `collect_garbage()`;
- server-filled metadata: uid, resourceVersion, generation, creationTimestamp;
- the metrics API once the test has called `install_metrics_server()`; before that 404.

No controllers run on their own: the tests create pods and write statuses themselves, and
`FakeCluster.run_deployment_controller` computes a Deployment's status the way the Deployment
controller does (observedGeneration, updated/ready/available replicas, Available and Progressing).
The server runs on its own event loop in a thread, so the synchronous `kubernetes` client can call it.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import json
import threading
import uuid
from collections.abc import Callable
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
    ("events.k8s.io", "v1", "events"): "events.k8s.io/Event",
    ("apps", "v1", "deployments"): "Deployment",
    ("autoscaling", "v2", "horizontalpodautoscalers"): "HorizontalPodAutoscaler",
    ("policy", "v1", "poddisruptionbudgets"): "PodDisruptionBudget",
    ("networking.k8s.io", "v1", "networkpolicies"): "NetworkPolicy",
    ("coordination.k8s.io", "v1", "leases"): "Lease",
    ("discovery.k8s.io", "v1", "endpointslices"): "EndpointSlice",
    ("metrics.k8s.io", "v1beta1", "pods"): "PodMetrics",
}
METRICS_GROUP = "metrics.k8s.io"
CORE_EVENTS = ("", "v1", "events")
NEW_EVENTS = ("events.k8s.io", "v1", "events")
# How many changes the watch history keeps; an older resourceVersion is 410 Gone, as after etcd compaction.
HISTORY = 10_000

Key = tuple[tuple[str, str, str], str | None, str]  # ((group, version, plural), namespace, name)


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

    @property
    def watch(self) -> bool:
        return self.params.get("watch") in ("true", "1")


@attrs.define(kw_only=True)
class FakeApiServer(kmock.KubernetesScaffold):
    """kmock's HTTP scaffold serving a store of objects with the behaviour listed in the module docstring."""

    namespaces: set[str] = attrs.field(factory=lambda: {"studio", "studio-workloads"})
    calls: list[Call] = attrs.field(factory=list)
    logs: dict[tuple[str, str, bool], str] = attrs.field(factory=dict)
    failures: list[tuple[Callable[[Call], bool], int, str]] = attrs.field(factory=list)
    metrics_server: bool = False
    store: dict[Key, dict[str, Any]] = attrs.field(factory=dict)
    # Per object, per field manager: the leaf paths it owns and whether it owns them by Apply or Update.
    owners: dict[Key, dict[str, tuple[str, set[tuple[str, ...]]]]] = attrs.field(factory=dict)
    history: list[tuple[int, Key, str, dict[str, Any]]] = attrs.field(factory=list)
    changed: asyncio.Condition | None = None
    _versions: Any = attrs.field(factory=lambda: itertools.count(1000))

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
        resource = (request.resource.group or "", request.resource.version or "", request.resource.plural or "")
        if resource[0] == METRICS_GROUP and not self.metrics_server:
            # What an API server without the metrics APIService answers: a plain 404, not a Status.
            return aiohttp.web.Response(status=404, text="404 page not found\n", content_type="text/plain")
        if request.namespace is not None and request.namespace not in self.namespaces:
            raise KubernetesError(status=404, reason="NotFound", message=f'namespaces "{request.namespace}" not found')
        if request.subresource == "log":
            return self._serve_log(resource, request)
        if request.action in (enums.action.LIST, enums.action.WATCH) or (request.name is None and call.watch):
            if call.watch:
                return await self._serve_watch(resource, request)
            return aiohttp.web.json_response(self._list(resource, request))
        if request.action == enums.action.FETCH:
            key = (resource, request.namespace, request.name or "")
            if key not in self.store:
                raise KubernetesError(status=404, reason="NotFound", message=f'{resource[2]} "{key[2]}" not found')
            return aiohttp.web.json_response(self.store[key])
        if request.method == enums.method.PATCH and content_type.startswith(APPLY):
            return self._apply(resource, request)
        if request.action == enums.action.CREATE:
            return self._create(resource, request)
        if request.name is not None and (request.action == enums.action.UPDATE or request.method == enums.method.PUT):
            return self._update(resource, request, content_type)
        if request.action == enums.action.DELETE and request.name is not None:
            return self._delete(resource, request)
        return await super()._handle(request)

    # --- writes ---

    def _create(self, resource: tuple[str, str, str], request: rendering.Request) -> aiohttp.web.StreamResponse:
        body = request.data
        _check_namespace(body, request.namespace)
        self._validate(body, None)
        key = (resource, request.namespace, body["metadata"]["name"])
        if key in self.store:
            raise KubernetesError(status=409, reason="AlreadyExists", message=f'"{key[2]}" already exists')
        manager = request.params.get("fieldManager") or "unknown"
        self._write(key, _defaulted(body), None, "ADDED")
        self._own(key, manager, "Update", _leaves(_ownable(body)), {})
        return aiohttp.web.json_response(self.store[key], status=201)

    def _update(
        self, resource: tuple[str, str, str], request: rendering.Request, content_type: str
    ) -> aiohttp.web.StreamResponse:
        key = (resource, request.namespace, request.name or "")
        if key not in self.store:
            raise KubernetesError(status=404, reason="NotFound", message=f'{resource[2]} "{key[2]}" not found')
        current = self.store[key]
        body = request.data if isinstance(request.data, dict) else json.loads(request.text or "{}")
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise KubernetesError(
                status=409,
                reason="Conflict",
                message=f'Operation cannot be fulfilled on {resource[2]} "{key[2]}": the object has been modified; '
                "please apply your changes to the latest version and try again",
            )
        self._check_uid(key, body)
        if request.method == enums.method.PUT:
            new = copy.deepcopy(body)
            if request.subresource == "status":
                new = {**copy.deepcopy(current), "status": body.get("status", {})}
        else:
            new = _merge_patch(current, body)
        new["metadata"] = {**current["metadata"], **(new.get("metadata") or {})}
        if request.subresource != "status":
            self._validate(new, current)
        manager = request.params.get("fieldManager") or "unknown"
        before = _leaf_values(_ownable(current))
        after = _leaf_values(_ownable(new))
        touched = {path for path, value in after.items() if before.get(path) != value}
        self._write(key, _defaulted(new), current, "MODIFIED")
        self._own(key, manager, "Update", touched, before)
        return aiohttp.web.json_response(self.store[key])

    def _apply(self, resource: tuple[str, str, str], request: rendering.Request) -> aiohttp.web.StreamResponse:
        manager = request.params.get("fieldManager")
        if not manager:
            raise KubernetesError(
                status=422,
                reason="Invalid",
                message='PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch",
            )
        force = request.params.get("force") in ("true", "1")
        body = request.data if isinstance(request.data, dict) else yaml.safe_load(request.text)
        if body.get("metadata", {}).get("name") != request.name:
            raise KubernetesError(
                status=400, reason="BadRequest", message="the name of the object does not match the URL"
            )
        _check_namespace(body, request.namespace)
        key = (resource, request.namespace, request.name or "")
        current = self.store.get(key)
        if current is not None:
            self._check_uid(key, body)
        elif (body.get("metadata") or {}).get("uid"):
            raise KubernetesError(
                status=409,
                reason="Conflict",
                message=f"Precondition failed: UID in precondition: {body['metadata']['uid']}, "
                "UID in object meta: (none)",
            )
        applied = _leaf_values(_ownable(body))
        if current is None:
            self._validate(body, None)
            self._write(key, _defaulted(body), None, "ADDED")
            self._own(key, manager, "Apply", set(applied), {})
            return aiohttp.web.json_response(self.store[key], status=201)
        live = _leaf_values(_ownable(current))
        owners = self.owners.setdefault(key, {})
        conflicts = []
        for path, value in applied.items():
            for other, (_, paths) in owners.items():
                if other != manager and path in paths and live.get(path) != value:
                    conflicts.append((other, path))
        if conflicts and not force:
            described = "; ".join(f'conflict with "{other}": .{".".join(path)}' for other, path in conflicts)
            raise KubernetesError(
                status=409, reason="Conflict", message=f"Apply failed with {len(conflicts)} conflicts: {described}"
            )
        merged = copy.deepcopy(current)
        _, previously = owners.get(manager, ("Apply", set()))
        for path in previously - set(applied):
            if not any(path in paths for other, (_, paths) in owners.items() if other != manager):
                _remove(merged, path)  # nobody else owns it: the field goes (and defaulting may bring it back)
        merged = _merge(merged, body)
        self._validate(merged, current)
        self._write(key, _defaulted(merged), current, "MODIFIED")
        self._own(key, manager, "Apply", set(applied), live)
        return aiohttp.web.json_response(self.store[key], status=200)

    def _delete(self, resource: tuple[str, str, str], request: rendering.Request) -> aiohttp.web.StreamResponse:
        key = (resource, request.namespace, request.name or "")
        if key not in self.store:
            raise KubernetesError(status=404, reason="NotFound", message=f'{resource[2]} "{key[2]}" not found')
        options = request.data if isinstance(request.data, dict) else {}
        wanted_uid = ((options.get("preconditions") or {}).get("uid")) or None
        stored_uid = self.store[key]["metadata"]["uid"]
        if wanted_uid and wanted_uid != stored_uid:
            raise KubernetesError(
                status=409,
                reason="Conflict",
                message=f"Precondition failed: UID in precondition: {wanted_uid}, UID in object meta: {stored_uid}",
            )
        policy = request.params.get("propagationPolicy") or options.get("propagationPolicy")
        obj = copy.deepcopy(self.store[key])
        finalizers = obj["metadata"].get("finalizers") or []
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers = [*finalizers, "foregroundDeletion"]
        if finalizers:
            if not obj["metadata"].get("deletionTimestamp"):
                obj["metadata"]["finalizers"] = finalizers
                obj["metadata"]["deletionTimestamp"] = _now()
                self._write(key, obj, self.store[key], "MODIFIED")
            return aiohttp.web.json_response(self.store[key])
        self.remove(key)
        return aiohttp.web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def _check_uid(self, key: Key, body: dict[str, Any]) -> None:
        wanted = (body.get("metadata") or {}).get("uid")
        stored = self.store[key]["metadata"]["uid"]
        if wanted and wanted != stored:
            raise KubernetesError(
                status=409,
                reason="Conflict",
                message=f"Precondition failed: UID in precondition: {wanted}, UID in object meta: {stored}",
            )

    def _validate(self, body: dict[str, Any], current: dict[str, Any] | None) -> None:
        kind, name = body.get("kind"), body.get("metadata", {}).get("name")
        errors = schema_errors(_without_server_fields(body), "1.30.0") if kind in _SCHEMA_KINDS else []
        if kind == "Deployment":
            spec = body.get("spec", {})
            selector = spec.get("selector", {}).get("matchLabels", {})
            labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
            if any(labels.get(k) != v for k, v in selector.items()):
                errors.append(
                    "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"
                )
            if current is not None and current.get("spec", {}).get("selector") != spec.get("selector"):
                errors.append(f"spec.selector: Invalid value: {json.dumps(spec.get('selector'))}: field is immutable")
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

    def _write(self, key: Key, body: dict[str, Any], previous: dict[str, Any] | None, change: str) -> None:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        old_meta = (previous or {}).get("metadata", {})
        meta["name"] = key[2]
        if key[1] is not None:
            meta["namespace"] = key[1]
        meta["uid"] = old_meta.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = old_meta.get("creationTimestamp") or _now()
        meta["resourceVersion"] = str(next(self._versions))
        generation = old_meta.get("generation", 0)
        meta["generation"] = generation + 1 if (previous or {}).get("spec") != obj.get("spec") else generation
        if key in self.owners:
            meta["managedFields"] = _managed_fields(self.owners[key])
        self.store[key] = obj
        self._record(key, change, obj)

    def _own(
        self, key: Key, manager: str, operation: str, paths: set[tuple[str, ...]], before: dict[tuple[str, ...], Any]
    ) -> None:
        """Record that `manager` set `paths`: it takes the ones whose value changed from every other manager,
        shares the ones it set to the value they had (an Apply), and nobody owns a field that is gone."""
        owners = self.owners.setdefault(key, {})
        after = _leaf_values(_ownable(self.store[key]))
        changed = {path for path in paths if before.get(path) != after.get(path)}
        for other, (other_operation, owned) in list(owners.items()):
            if other != manager:
                owners[other] = (other_operation, owned - changed)
        mine = owners.get(manager, (operation, set()))[1]
        owners[manager] = (operation, (mine | paths) if operation == "Update" else set(paths))
        for name, (op, owned) in list(owners.items()):
            owners[name] = (op, {path for path in owned if path in after})
        self.store[key]["metadata"]["managedFields"] = _managed_fields(owners)

    def remove(self, key: Key) -> None:
        obj = self.store.pop(key, None)
        self.owners.pop(key, None)
        if obj is not None:
            self._record(key, "DELETED", obj)

    def _record(self, key: Key, change: str, obj: dict[str, Any]) -> None:
        self.history.append((int(obj["metadata"]["resourceVersion"]), key, change, copy.deepcopy(obj)))
        del self.history[:-HISTORY]
        if self.changed is not None:
            condition = self.changed

            async def notify() -> None:
                async with condition:
                    condition.notify_all()

            asyncio.get_running_loop().create_task(notify())

    # --- reads ---

    def _objects(self, resource: tuple[str, str, str], namespace: str | None) -> list[dict[str, Any]]:
        found = [
            obj for (r, ns, _), obj in self.store.items() if r == resource and (namespace is None or ns == namespace)
        ]
        if resource == NEW_EVENTS:
            found += [
                _new_event(obj)
                for (r, ns, _), obj in self.store.items()
                if r == CORE_EVENTS and (namespace is None or ns == namespace)
            ]
        return found

    def _list(self, resource: tuple[str, str, str], request: rendering.Request) -> dict[str, Any]:
        labels = _parse_selector(request.params.get("labelSelector", ""))
        fields = _parse_selector(request.params.get("fieldSelector", ""))
        items = [
            obj
            for obj in self._objects(resource, request.namespace)
            if _selected(obj.get("metadata", {}).get("labels") or {}, labels) and _fields_match(obj, fields)
        ]
        kind = KINDS.get(resource, "").rpartition("/")[2]
        return {
            "apiVersion": "/".join(p for p in resource[:2] if p),
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(self._latest())},
            "items": sorted(items, key=lambda item: item["metadata"]["name"]),
        }

    def _latest(self) -> int:
        return self.history[-1][0] if self.history else 999

    async def _serve_watch(
        self, resource: tuple[str, str, str], request: rendering.Request
    ) -> aiohttp.web.StreamResponse:
        labels = _parse_selector(request.params.get("labelSelector", ""))
        fields = _parse_selector(request.params.get("fieldSelector", ""))
        since = int(request.params.get("resourceVersion") or 0)
        timeout = float(request.params.get("timeoutSeconds") or 300)
        if since and self.history and since < self.history[0][0] - 1:
            raise KubernetesError(status=410, reason="Expired", message=f"too old resource version: {since}")
        if self.changed is None:
            self.changed = asyncio.Condition()
        raw = request._raw_request
        assert raw is not None
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        deadline = asyncio.get_running_loop().time() + timeout
        if not since:
            for obj in self._objects(resource, request.namespace):
                if _selected(obj.get("metadata", {}).get("labels") or {}, labels) and _fields_match(obj, fields):
                    await response.write(json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n")
            since = self._latest()
        try:
            while True:
                for version, (r, ns, _), change, obj in list(self.history):
                    if version <= since:
                        continue
                    since = version
                    shown = _new_event(obj) if resource == NEW_EVENTS and r == CORE_EVENTS else obj
                    if r != resource and not (resource == NEW_EVENTS and r == CORE_EVENTS):
                        continue
                    if request.namespace is not None and ns != request.namespace:
                        continue
                    if _selected(shown.get("metadata", {}).get("labels") or {}, labels) and _fields_match(
                        shown, fields
                    ):
                        await response.write(json.dumps({"type": change, "object": shown}).encode() + b"\n")
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                async with self.changed:
                    try:
                        await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 0.5))
                    except TimeoutError:
                        pass
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        await response.write_eof()
        return response

    def _serve_log(self, resource: tuple[str, str, str], request: rendering.Request) -> aiohttp.web.StreamResponse:
        key = (resource, request.namespace, request.name or "")
        if key not in self.store:
            raise KubernetesError(status=404, reason="NotFound", message=f'pods "{request.name}" not found')
        pod = self.store[key]
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
        text = self.logs[(request.name or "", container, previous)]
        tail = request.params.get("tailLines")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail) :]) if int(tail) > 0 else ""
        return aiohttp.web.Response(text=text, content_type="text/plain")


_SCHEMA_KINDS = {
    "Deployment",
    "Service",
    "Secret",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Lease",
}


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
        self.api.changed = asyncio.Condition()
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
        return self._sync(lambda: copy.deepcopy(self.api.store.get((_resource(kind), namespace, name))))

    def names(self, kind: str, namespace: str = "studio") -> list[str]:
        resource = _resource(kind)
        return self._sync(lambda: sorted(n for (r, ns, n) in self.api.store if r == resource and ns == namespace))

    def put(self, obj: dict[str, Any], *, manager: str = "kube-controller-manager") -> None:
        """Store an object as a controller would (no validation): pods, events, status updates."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        resource = _resource(f"events.k8s.io/{kind}" if group == "events.k8s.io" else kind)

        def write() -> None:
            meta = obj["metadata"]
            key = (resource, meta.get("namespace", "studio"), meta["name"])
            existing = self.api.store.get(key)
            before = _leaf_values(_ownable(existing or {}))
            self.api._write(key, obj, existing, "MODIFIED" if existing else "ADDED")
            touched = {p for p, v in _leaf_values(_ownable(obj)).items() if before.get(p) != v}
            self.api._own(key, manager, "Update", touched, before)

        self._sync(write)

    def update(self, kind: str, name: str, changes: dict[str, Any], *, manager: str, namespace: str = "studio") -> None:
        """A merge patch by another client (`kubectl scale`, the HPA controller): it becomes the fields' manager."""
        stored = self.get(kind, name, namespace)
        assert stored is not None, f"no {kind} {name}"
        self.put(_merge_patch(stored, changes), manager=manager)

    def delete_now(self, kind: str, name: str, namespace: str = "studio") -> None:
        """Someone deleted the object by hand (`kubectl delete --wait=false` with nothing left to wait for)."""
        self._sync(lambda: self.api.remove((_resource(kind), namespace, name)))

    def set_status(self, kind: str, name: str, status: dict[str, Any]) -> None:
        stored = self.get(kind, name)
        assert stored is not None, f"no {kind} {name}"
        stored["status"] = status
        self.put(stored)

    def pods_of(self, deployment: str, namespace: str = "studio") -> list[dict[str, Any]]:
        """The pods the Deployment's selector picks (not terminating ones excluded)."""
        stored = self.get("Deployment", deployment, namespace)
        assert stored is not None, f"no Deployment {deployment}"
        selector = stored["spec"]["selector"]["matchLabels"]
        pods = [self.get("Pod", name, namespace) for name in self.names("Pod", namespace)]
        return [
            pod
            for pod in pods
            if pod is not None and all((pod["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
        ]

    def run_deployment_controller(
        self, name: str, *, deadline_exceeded: bool = False, observed: bool = True, namespace: str = "studio"
    ) -> dict[str, Any]:
        """Write the Deployment's status as the Deployment controller would, from its pods; returns it."""
        stored = self.get("Deployment", name, namespace)
        assert stored is not None, f"no Deployment {name}"
        current = stored["spec"]["template"]["metadata"].get("annotations", {}).get("studio.ml/template-hash")
        pods = [pod for pod in self.pods_of(name, namespace) if not pod["metadata"].get("deletionTimestamp")]
        updated = [p for p in pods if p["metadata"].get("annotations", {}).get("studio.ml/template-hash") == current]
        ready = [p for p in pods if _pod_ready(p)]
        wanted = stored["spec"].get("replicas", 1)
        complete = (
            len(updated) == wanted and len(pods) == wanted and len([p for p in updated if _pod_ready(p)]) >= wanted
        )
        if deadline_exceeded:
            progressing = {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": f'ReplicaSet "{name}-abc" has timed out progressing.',
            }
        elif complete:
            progressing = {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable",
                "message": f'ReplicaSet "{name}-abc" has successfully progressed.',
            }
        else:
            progressing = {
                "type": "Progressing",
                "status": "True",
                "reason": "ReplicaSetUpdated",
                "message": f'ReplicaSet "{name}-abc" is progressing.',
            }
        status = {
            "observedGeneration": stored["metadata"]["generation"] - (0 if observed else 1),
            "replicas": len(pods),
            "updatedReplicas": len(updated),
            "readyReplicas": len(ready),
            "availableReplicas": len(ready),
            "unavailableReplicas": max(0, wanted - len(ready)),
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if len(ready) >= wanted else "False",
                    "reason": "MinimumReplicasAvailable" if len(ready) >= wanted else "MinimumReplicasUnavailable",
                },
                progressing,
            ],
        }
        self.set_status("Deployment", name, status)
        return status

    def collect_garbage(self) -> None:
        """Play the garbage collector: finish foreground deletions, with the dependants (pods) first."""

        def collect() -> None:
            for key, obj in list(self.api.store.items()):
                if not obj.get("metadata", {}).get("deletionTimestamp"):
                    continue
                if key[0] == ("apps", "v1", "deployments"):
                    selector = obj["spec"]["selector"]["matchLabels"]
                    for pod_key, pod in list(self.api.store.items()):
                        labels = pod.get("metadata", {}).get("labels") or {}
                        if (
                            pod_key[0] == ("", "v1", "pods")
                            and pod_key[1] == key[1]
                            and all(labels.get(k) == v for k, v in selector.items())
                        ):
                            self.api.remove(pod_key)
                self.api.remove(key)

        self._sync(collect)

    def fail_next(self, status: int, message: str, *, method: str, kind: str) -> None:
        """Make the next `method` request on `kind` answer `status` (a flaky or conflicting cluster)."""
        self._sync(
            lambda: self.api.failures.append(
                (lambda call: call.method == method and call.kind == kind and not call.watch, status, message)
            )
        )

    def fail_always(self, status: int, message: str, *, kind: str) -> Callable[[], None]:
        """Answer `status` to every request on `kind` until the returned function is called (RBAC without it)."""

        def matches(call: Call) -> bool:
            if call.kind == kind:
                self.api.failures.append((matches, status, message))  # stays in place for the next call
                return True
            return False

        self._sync(lambda: self.api.failures.append((matches, status, message)))

        def stop() -> None:
            self._sync(
                lambda: self.api.failures.__setitem__(
                    slice(None), [f for f in self.api.failures if f[0] is not matches]
                )
            )

        return stop

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


def _resource(kind: str) -> tuple[str, str, str]:
    for resource, known in KINDS.items():
        if known == kind:
            return resource
    raise KeyError(kind)


def _check_namespace(body: dict[str, Any], namespace: str | None) -> None:
    given = (body.get("metadata") or {}).get("namespace")
    if given and namespace and given != namespace:
        raise KubernetesError(
            status=400,
            reason="BadRequest",
            message="the namespace of the provided object does not match the namespace sent on the request",
        )


def _reason(status: int) -> str:
    return {
        401: "Unauthorized",
        403: "Forbidden",
        409: "Conflict",
        422: "Invalid",
        429: "TooManyRequests",
        500: "InternalError",
    }.get(status, "Unknown")


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _new_event(core: dict[str, Any]) -> dict[str, Any]:
    """A core/v1 Event as events.k8s.io/v1 lists it (the API server converts between the two)."""
    meta = {k: v for k, v in core["metadata"].items() if k != "managedFields"}
    event: dict[str, Any] = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": meta,
        "regarding": core.get("involvedObject", {}),
        "note": core.get("message", ""),
        "reason": core.get("reason", ""),
        "type": core.get("type", "Normal"),
        "eventTime": core.get("eventTime"),
        "deprecatedCount": core.get("count", 1),
        "deprecatedFirstTimestamp": core.get("firstTimestamp"),
        "deprecatedLastTimestamp": core.get("lastTimestamp"),
        "reportingController": (core.get("source") or {}).get("component", ""),
    }
    return {key: value for key, value in event.items() if value is not None}


def _without_server_fields(body: dict[str, Any]) -> dict[str, Any]:
    clean = copy.deepcopy(body)
    meta = clean.get("metadata", {})
    for key in ("managedFields", "uid", "resourceVersion", "generation", "creationTimestamp"):
        meta.pop(key, None)
    clean.pop("status", None)
    return clean


def _defaulted(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server's defaulting adds: a Deployment without replicas gets 1."""
    if obj.get("kind") == "Deployment":
        obj.setdefault("spec", {}).setdefault("replicas", 1)
    return obj


def _ownable(obj: dict[str, Any]) -> dict[str, Any]:
    """The fields managers own: everything but the server's metadata and the identity."""
    clean = copy.deepcopy(obj)
    clean.pop("status", None)
    clean.pop("apiVersion", None)
    clean.pop("kind", None)
    meta = clean.get("metadata", {})
    for key in ("managedFields", "uid", "resourceVersion", "generation", "creationTimestamp", "name", "namespace"):
        meta.pop(key, None)
    for key in ("deletionTimestamp", "finalizers"):
        meta.pop(key, None)
    return clean


def _leaf_values(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Leaf path → value; lists are atomic leaves (the studio owns whole container lists)."""
    values: dict[tuple[str, ...], Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            values.update(_leaf_values(value, (*prefix, key)))
        else:
            values[(*prefix, key)] = value
    return values


def _leaves(tree: dict[str, Any]) -> set[tuple[str, ...]]:
    return set(_leaf_values(tree))


def _managed_fields(owners: dict[str, tuple[str, set[tuple[str, ...]]]]) -> list[dict[str, Any]]:
    """`metadata.managedFields` as the API server writes it: per manager, `fieldsV1` with `f:` keys."""
    entries = []
    for manager, (operation, paths) in sorted(owners.items()):
        if not paths:
            continue
        fields: dict[str, Any] = {}
        for path in sorted(paths):
            node = fields
            for part in path:
                node = node.setdefault(f"f:{part}", {})
        entries.append(
            {
                "manager": manager,
                "operation": operation,
                "apiVersion": "v1",
                "fieldsType": "FieldsV1",
                "fieldsV1": fields,
            }
        )
    return entries


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


def _merge_patch(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch: dicts merge, None removes, anything else replaces."""
    result = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge_patch(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result

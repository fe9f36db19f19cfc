"""Azure Resource Manager shapes: the studio's Azure-shaped views turned into ARM resources, and back.

Pure translation: every value comes from apps.endpoints.selectors' views (the one definition the REST API, CLI
and pages show), every spec goes to apps.endpoints.services. azure-ai-ml parses strictly: endpoints need
`systemData.lastModifiedAt`, deployments `properties.scaleSettings`, models `properties.flavors`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apps.core.errors import ApplicationError
from apps.endpoints.selectors import HIDDEN_KEY

PROVIDER = "Microsoft.MachineLearningServices"
LOCATION = "local"
DATASTORE = "workspaceblobstore"
CONTAINER = "studio-blobstore"
AUTH_MODES = {"key": "Key", "aml_token": "AMLToken", "aad_token": "AADToken"}
COMPUTE_TYPES = {"managed": "Managed", "kubernetes": "Kubernetes"}
_DURATION = re.compile(r"^P(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)$")


@dataclass(frozen=True)
class Scope:
    """The subscription, resource group and workspace of a request (the studio is one workspace: any names reach it)."""

    subscription: str
    resource_group: str
    workspace: str

    @property
    def workspace_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/workspaces/{self.workspace}"
        )

    def asset_id(self, kind: str, name: str, version: str | int) -> str:
        return f"{self.workspace_id}/{kind}/{name}/versions/{version}"


def _iso(value: str | datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else value


def system_data(created_at: str | datetime | None, modified_at: str | datetime | None = None) -> dict[str, Any]:
    created = _iso(created_at)
    return {
        "createdAt": created,
        "createdBy": "studio",
        "createdByType": "User",
        "lastModifiedAt": _iso(modified_at) or created,
        "lastModifiedBy": "studio",
        "lastModifiedByType": "User",
    }


def duration(ms: int | None) -> str | None:
    """Milliseconds as an ISO 8601 duration (`PT0.5S`), the form ARM uses."""
    if ms is None:
        return None
    seconds = ms / 1000
    return f"PT{seconds:g}S"


def duration_ms(value: Any, *, field: str) -> int | None:
    """An ISO 8601 duration (`PT5S`, `PT1M30S`) in milliseconds."""
    if value in (None, ""):
        return None
    match = _DURATION.match(str(value))
    if not match:
        raise ApplicationError(f"{field}: expected an ISO 8601 duration like PT5S, got {value!r}", field=field)
    hours, minutes, seconds = (float(match[group] or 0) for group in ("h", "m", "s"))
    return round((hours * 3600 + minutes * 60 + seconds) * 1000)


def error_body(code: str, message: str, target: str | None = None) -> dict[str, Any]:
    """Azure's error shape."""
    return {"error": {"code": code, "message": message, "target": target, "details": [], "additionalInfo": []}}


# --- resources ---


def workspace(scope: Scope) -> dict[str, Any]:
    return {
        "id": scope.workspace_id,
        "name": scope.workspace,
        "type": f"{PROVIDER}/workspaces",
        "location": LOCATION,
        "kind": "Default",
        "tags": {},
        "identity": {"type": "None"},
        "sku": {"name": "Basic", "tier": "Basic"},
        "properties": {
            "friendlyName": scope.workspace,
            "description": "The studio",
            "provisioningState": "Succeeded",
            "publicNetworkAccess": "Enabled",
            "hbiWorkspace": False,
            "v1LegacyMode": False,
        },
        "systemData": system_data(None),
    }


def endpoint(scope: Scope, view: dict[str, Any], *, modified_at: datetime) -> dict[str, Any]:
    """An online endpoint from selectors.endpoint_view."""
    return {
        "id": f"{scope.workspace_id}/onlineEndpoints/{view['name']}",
        "name": view["name"],
        "type": f"{PROVIDER}/workspaces/onlineEndpoints",
        "location": LOCATION,
        "kind": "Kubernetes" if view.get("compute") else "Managed",
        "tags": view["tags"] or {},
        "identity": {"type": "None"},
        "properties": {
            "authMode": AUTH_MODES.get(view["auth_mode"], view["auth_mode"]),
            "description": view["description"] or None,
            "properties": {},
            "compute": view.get("compute"),
            "provisioningState": view["provisioning_state"],
            "scoringUri": view["scoring_uri"],
            "swaggerUri": view["swagger_uri"],
            "traffic": view["traffic"] or {},
            "mirrorTraffic": view["mirror_traffic"] or {},
            "publicNetworkAccess": str(view["public_network_access"]).capitalize(),
        },
        "systemData": system_data(view["creation_context"]["created_at"], modified_at),
    }


def _probe(probe: dict[str, Any] | None) -> dict[str, Any] | None:
    if not probe:
        return None
    return {
        "initialDelay": duration(int(probe["initial_delay"] * 1000)) if "initial_delay" in probe else None,
        "period": duration(int(probe["period"] * 1000)) if "period" in probe else None,
        "timeout": duration(int(probe["timeout"] * 1000)) if "timeout" in probe else None,
        "successThreshold": probe.get("success_threshold"),
        "failureThreshold": probe.get("failure_threshold"),
    }


def deployment(
    scope: Scope, view: dict[str, Any], *, model_id: str | None, code_id: str | None, environment_id: str
) -> dict[str, Any]:
    """An online deployment from selectors.deployment_view; the asset ids are resolved by the caller."""
    request = view.get("request_settings") or {}
    code = view.get("code_configuration")
    return {
        "id": f"{scope.workspace_id}/onlineEndpoints/{view['endpoint_name']}/deployments/{view['name']}",
        "name": view["name"],
        "type": f"{PROVIDER}/workspaces/onlineEndpoints/deployments",
        "location": LOCATION,
        "kind": COMPUTE_TYPES.get(view["type"], "Managed"),
        "tags": view["tags"] or {},
        "sku": {"name": "Default", "tier": "Standard", "capacity": view["instance_count"]},
        "properties": {
            "endpointComputeType": COMPUTE_TYPES.get(view["type"], "Managed"),
            "description": view["description"] or None,
            # Azure's free-form properties: where a Reader is told why the variables' values are null.
            "properties": {"environmentVariablesHidden": view[HIDDEN_KEY]} if HIDDEN_KEY in view else {},
            "model": model_id,
            "codeConfiguration": {"codeId": code_id, "scoringScript": code["scoring_script"]} if code else None,
            "environmentId": environment_id,
            "environmentVariables": view.get("environment_variables") or {},
            "instanceType": view["instance_type"],
            "scaleSettings": {"scaleType": "Default"},
            "requestSettings": {
                "requestTimeout": duration(request.get("request_timeout_ms")),
                "maxConcurrentRequestsPerInstance": request.get("max_concurrent_requests_per_instance"),
                "maxQueueWait": duration(request.get("max_queue_wait_ms")),
            },
            "livenessProbe": _probe(view.get("liveness_probe")),
            "readinessProbe": _probe(view.get("readiness_probe")),
            "appInsightsEnabled": bool(view.get("app_insights_enabled", False)),
            "provisioningState": view["provisioning_state"],
        },
        "systemData": system_data(view["creation_context"]["created_at"]),
    }


def model(scope: Scope, view: dict[str, Any], *, model_uri: str) -> dict[str, Any]:
    """A model version from selectors.model_view."""
    return {
        "id": scope.asset_id("models", view["name"], view["version"]),
        "name": view["version"],
        "type": f"{PROVIDER}/workspaces/models/versions",
        "properties": {
            "description": view["description"] or None,
            "tags": view["tags"] or {},
            "properties": {},
            "isAnonymous": False,
            "isArchived": False,
            "modelType": view["type"],
            "modelUri": model_uri,
            "flavors": {},
            "provisioningState": "Succeeded",
        },
        "systemData": system_data(view["creation_context"]["created_at"]),
    }


def environment(scope: Scope, view: dict[str, Any], *, conda_text: str | None, anonymous: bool) -> dict[str, Any]:
    """An environment version from selectors.environment_view."""
    return {
        "id": scope.asset_id("environments", view["name"], view["version"]),
        "name": view["version"],
        "type": f"{PROVIDER}/workspaces/environments/versions",
        "properties": {
            "description": view["description"] or None,
            "tags": view["tags"] or {},
            "properties": {},
            "isAnonymous": anonymous,
            "isArchived": False,
            "image": view["image"] or None,
            "condaFile": conda_text,
            "environmentType": "UserCreated",
            "osType": "Linux",
            "inferenceConfig": _inference_config(view.get("inference_config")),
            "provisioningState": "Succeeded",
        },
        "systemData": system_data(None),
    }


def _inference_config(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config:
        return None
    names = {"liveness_route": "livenessRoute", "readiness_route": "readinessRoute", "scoring_route": "scoringRoute"}
    return {names[key]: value for key, value in config.items() if key in names}


def code(scope: Scope, row: Any, *, code_uri: str) -> dict[str, Any]:
    """A code version (apps.arm.models.CodeVersion)."""
    return {
        "id": scope.asset_id("codes", row.name, row.version),
        "name": row.version,
        "type": f"{PROVIDER}/workspaces/codes/versions",
        "properties": {
            "description": row.description or None,
            "tags": row.tags or {},
            "properties": {"hash_sha256": row.content_hash, "hash_version": "202208"} if row.content_hash else {},
            "isAnonymous": False,
            "isArchived": False,
            "codeUri": code_uri,
            "provisioningState": "Succeeded",
        },
        "systemData": system_data(row.created_at),
    }


def datastore(scope: Scope, *, account: str) -> dict[str, Any]:
    """The workspace's default blob datastore: the studio's own blob endpoint (SAS credentials)."""
    return {
        "id": f"{scope.workspace_id}/datastores/{DATASTORE}",
        "name": DATASTORE,
        "type": f"{PROVIDER}/workspaces/datastores",
        "properties": {
            "datastoreType": "AzureBlob",
            "accountName": account,
            "containerName": CONTAINER,
            "endpoint": "local",
            "protocol": "https",
            "isDefault": True,
            "credentials": {"credentialsType": "Sas"},
            "description": "The studio's own blob store; uploads here become models and code",
            "tags": {},
            "properties": {},
        },
        "systemData": system_data(None),
    }


def token(issued: dict[str, str]) -> dict[str, Any]:
    """An endpoint token (services.token_issue) with ARM's epoch-second times."""

    def epoch(text: str) -> int:
        return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())

    return {
        "accessToken": issued["accessToken"],
        "tokenType": issued["tokenType"],
        "expiryTimeUtc": epoch(issued["expiryTimeUtc"]),
        "refreshAfterTimeUtc": epoch(issued["refreshAfterTimeUtc"]),
    }


# --- specs from ARM bodies ---


def _properties(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApplicationError("the request body must be a JSON object")
    props = body.get("properties")
    if not isinstance(props, dict):
        raise ApplicationError("properties: required, an object", field="properties")
    return props


def endpoint_spec(name: str, body: Any) -> dict[str, Any]:
    """The YAML-shaped spec of an ARM online endpoint body."""
    props = _properties(body)
    modes = {value.lower(): key for key, value in AUTH_MODES.items()}
    auth = str(props.get("authMode") or "Key")
    if auth.lower() not in modes:
        raise ApplicationError(f"properties.authMode: expected Key or AMLToken, got {auth!r}", field="authMode")
    spec: dict[str, Any] = {"name": name, "auth_mode": modes[auth.lower()]}
    if props.get("description") is not None:
        spec["description"] = props["description"]
    if isinstance(body.get("tags"), dict):
        spec["tags"] = body["tags"]
    if isinstance(props.get("traffic"), dict):
        spec["traffic"] = props["traffic"]
    if isinstance(props.get("mirrorTraffic"), dict):
        spec["mirror_traffic"] = props["mirrorTraffic"]
    if props.get("compute"):
        spec["compute"] = props["compute"]
    if props.get("publicNetworkAccess"):
        spec["public_network_access"] = str(props["publicNetworkAccess"]).lower()
    return spec


def _probe_spec(probe: Any, field: str) -> dict[str, Any] | None:
    if not isinstance(probe, dict):
        return None
    spec: dict[str, Any] = {}
    for arm_key, key in (("initialDelay", "initial_delay"), ("period", "period"), ("timeout", "timeout")):
        ms = duration_ms(probe.get(arm_key), field=f"{field}.{arm_key}")
        if ms is not None:
            spec[key] = max(1, round(ms / 1000))
    for arm_key, key in (("successThreshold", "success_threshold"), ("failureThreshold", "failure_threshold")):
        if probe.get(arm_key) is not None:
            spec[key] = probe[arm_key]
    return spec or None


def deployment_spec(endpoint_name: str, name: str, body: Any, *, code_ref: str | None) -> dict[str, Any]:
    """The YAML-shaped spec of an ARM online deployment body; the code id is resolved by the caller."""
    props = _properties(body)
    compute = {value.lower(): key for key, value in COMPUTE_TYPES.items()}
    kind = str(props.get("endpointComputeType") or "Managed").lower()
    if kind not in compute:
        raise ApplicationError(
            f"properties.endpointComputeType: expected Managed or Kubernetes, got {props.get('endpointComputeType')!r}",
            field="endpointComputeType",
        )
    sku = body.get("sku") if isinstance(body.get("sku"), dict) else {}
    spec: dict[str, Any] = {
        "name": name,
        "endpoint_name": endpoint_name,
        "type": compute[kind],
        "instance_count": sku.get("capacity") or 1,
    }
    if not props.get("environmentId"):
        raise ApplicationError("properties.environmentId: required", field="environmentId")
    spec["environment"] = props["environmentId"]
    if props.get("model"):
        spec["model"] = props["model"]
    code_config = props.get("codeConfiguration")
    if isinstance(code_config, dict) and code_ref:
        spec["code_configuration"] = {"code": code_ref, "scoring_script": code_config.get("scoringScript")}
    for arm_key, key in (
        ("instanceType", "instance_type"),
        ("description", "description"),
        ("environmentVariables", "environment_variables"),
        ("appInsightsEnabled", "app_insights_enabled"),
    ):
        if props.get(arm_key) is not None:
            spec[key] = props[arm_key]
    if isinstance(body.get("tags"), dict):
        spec["tags"] = body["tags"]
    request = props.get("requestSettings")
    if isinstance(request, dict):
        settings: dict[str, Any] = {}
        timeout = duration_ms(request.get("requestTimeout"), field="requestSettings.requestTimeout")
        if timeout is not None:
            settings["request_timeout_ms"] = timeout
        if request.get("maxConcurrentRequestsPerInstance") is not None:
            settings["max_concurrent_requests_per_instance"] = request["maxConcurrentRequestsPerInstance"]
        wait = duration_ms(request.get("maxQueueWait"), field="requestSettings.maxQueueWait")
        if wait is not None:
            settings["max_queue_wait_ms"] = wait
        if settings:
            spec["request_settings"] = settings
    for arm_key, key in (("livenessProbe", "liveness_probe"), ("readinessProbe", "readiness_probe")):
        probe = _probe_spec(props.get(arm_key), arm_key)
        if probe:
            spec[key] = probe
    return spec


def asset_ref(uri: str) -> tuple[str, str | None]:
    """(kind, rest) of an ARM asset id or an `azureml:` reference: `codes`, `models`, `environments` or ''."""
    match = re.search(r"/(codes|models|environments)/([^/]+)(?:/versions/([^/]+))?/?$", uri)
    if not match:
        return "", None
    return match[1], f"{match[2]}:{match[3]}" if match[3] else match[2]

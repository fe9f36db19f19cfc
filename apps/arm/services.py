"""Writes of the Azure-shaped API: each turns an ARM body into a studio spec and calls apps.endpoints.services.

The rules (names, traffic, quota, versions) are all there; this module only adds what Azure has and the
studio does not: code versions, and blob uploads that become the studio's uploads.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml
from django.conf import settings
from django.db import transaction

from apps.arm import blobs, sas, shapes
from apps.arm.models import CodeVersion
from apps.core.errors import ApplicationError, Conflict, NotFound
from apps.endpoints import selectors, services, storage
from apps.endpoints.models import Deployment, Endpoint, Environment, Model, ProvisioningState

_DATASTORE_PATH = re.compile(r"/datastores/(?P<datastore>[^/]+)/paths/(?P<path>.+)$")
_STORAGE_PATH = re.compile(r"/storage/[^/]+/(?P<container>[^/]+)/(?P<path>.+)$")
PENDING_PREFIX = "pending"


def blob_location(uri: str, *, field: str) -> tuple[str, str]:
    """(container, blob or folder) of an asset's URI: `azureml://.../datastores/<d>/paths/<p>` or a blob URL."""
    path = unquote(urlsplit(uri).path if "://" in uri and not uri.startswith("azureml://") else uri)
    match = _DATASTORE_PATH.search(path)
    if match:
        if match["datastore"] != shapes.DATASTORE:
            raise ApplicationError(f"{field}: datastore {match['datastore']!r} does not exist", field=field)
        return shapes.CONTAINER, match["path"].strip("/")
    match = _STORAGE_PATH.search(path)
    if match:
        return match["container"], match["path"].strip("/")
    raise ApplicationError(
        f"{field}: expected a path in the workspace's datastore ({shapes.DATASTORE}) or a studio blob URL, got {uri!r}",
        field=field,
    )


def _take_upload(uri: str, *, field: str, user: Any) -> Any:
    container, blob = blob_location(uri, field=field)
    try:
        source = blobs.blob_take(container=container, blob=blob)
    except NotFound as exc:
        raise ApplicationError(f"{field}: {exc.message}", field=field) from None
    sas.release(container=container, blob=blob)
    return services.upload_adopt(source=source, name=PurePosixPath(blob).name, user=user)


# --- uploads ---


def pending_upload_start(*, storage_url: str) -> dict[str, Any]:
    """A fresh place for one code upload and a SAS for it alone (`startPendingUpload`)."""
    prefix = f"{PENDING_PREFIX}/{secrets.token_hex(16)}"
    token = sas.sas_issue(container=shapes.CONTAINER, prefix=prefix)
    blob_uri = f"{storage_url}/{shapes.CONTAINER}/{prefix}"
    return {
        "blobReferenceForConsumption": {
            "blobUri": blob_uri,
            "storageAccountArmId": None,
            "credential": {"credentialType": "SAS", "sasUri": f"{blob_uri}?{token}"},
        },
        "temporaryDataReferenceId": prefix.split("/")[-1],
        "temporaryDataReferenceType": "TemporaryBlobReference",
    }


def datastore_secrets() -> dict[str, Any]:
    """The default datastore's secret: a SAS that binds to the first upload folder it is used for."""
    return {"secretsType": "Sas", "sasToken": sas.sas_issue(container=shapes.CONTAINER, prefix=None)}


# --- code versions ---


@transaction.atomic
def code_version_create(*, name: str, version: str, body: Any, user: Any) -> CodeVersion:
    """Register a code version from an uploaded folder; the same content and name is the same version."""
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict) or not props.get("codeUri"):
        raise ApplicationError("properties.codeUri: required", field="codeUri")
    existing = CodeVersion.objects.filter(name=name, version=version).first()
    upload = _take_upload(str(props["codeUri"]), field="properties.codeUri", user=user)
    if upload.kind != upload.Kind.FOLDER:
        raise ApplicationError(f"properties.codeUri: expected a folder, got the file {upload.name!r}", field="codeUri")
    code_path = storage.code_snapshot(upload.path)
    if existing is not None:
        if existing.code_path != code_path:
            raise Conflict(f"code {name}:{version} already exists with other files; give a new version")
        return existing
    extra = props["properties"] if isinstance(props.get("properties"), dict) else {}
    row = CodeVersion(
        name=name,
        version=version,
        code_path=code_path,
        content_hash=str(extra.get("hash_sha256") or ""),
        description=str(props.get("description") or ""),
        tags=props.get("tags") or {},
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    row.full_clean()
    row.save()
    return row


def code_version_get(*, name: str, version: str) -> CodeVersion:
    row = CodeVersion.objects.filter(name=name, version=version).first()
    if row is None:
        raise NotFound(f"code {name}:{version} does not exist")
    return row


def code_versions_list(*, name: str, content_hash: str | None) -> list[CodeVersion]:
    rows = CodeVersion.objects.filter(name=name).order_by("-created_at")
    if content_hash:
        rows = CodeVersion.objects.filter(content_hash=content_hash).order_by("-created_at")
    return [row for row in rows if (Path(settings.MEDIA_ROOT) / row.code_path).is_dir()]


def code_ref(code_id: str) -> str:
    """The studio's `code:<digest>` for an ARM code id (`.../codes/<name>/versions/<version>`)."""
    kind, ref = shapes.asset_ref(code_id)
    if kind != "codes" or not ref or ":" not in ref:
        raise ApplicationError(
            f"properties.codeConfiguration.codeId: expected .../codes/<name>/versions/<version>, got {code_id!r}",
            field="codeId",
        )
    name, version = ref.split(":", 1)
    try:
        row = code_version_get(name=name, version=version)
    except NotFound as exc:
        raise ApplicationError(f"properties.codeConfiguration.codeId: {exc.message}", field="codeId") from None
    return f"code:{row.code_path.removeprefix('code/')}"


def code_id_for(scope: shapes.Scope, code_path: str) -> str:
    """The ARM id of a deployment's code snapshot (registering it under its digest when no version names it)."""
    row = CodeVersion.objects.filter(code_path=code_path).order_by("created_at").first()
    if row is None:
        row, _ = CodeVersion.objects.get_or_create(
            name=code_path.removeprefix("code/"), version="1", defaults={"code_path": code_path}
        )
    return scope.asset_id("codes", row.name, row.version)


# --- models and environments ---


@transaction.atomic
def model_version_create(*, name: str, version: str, body: Any, user: Any) -> Model:
    """Register a model version from an upload in the datastore (the same content again is the same version)."""
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict) or not props.get("modelUri"):
        raise ApplicationError("properties.modelUri: required", field="modelUri")
    upload = _take_upload(str(props["modelUri"]), field="properties.modelUri", user=user)
    existing = Model.objects.filter(name=name, version=version).first() if str(version).isdigit() else None
    if existing is not None:
        digest, _, _ = storage.tree_digest(existing.root / existing.path_name)
        if digest == upload.sha256:
            return existing
    spec = {
        "name": name,
        "version": version,
        "path": f"upload:{upload.uid}",
        "type": props.get("modelType") or "custom_model",
        "description": props.get("description") or "",
        "tags": props.get("tags") or {},
    }
    return services.model_create(spec=spec, user=user)


def environment_version_create(*, name: str, version: str, body: Any, user: Any) -> Environment:
    """Register an environment version; an anonymous one (a deployment's inline environment) is the studio's own."""
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict):
        raise ApplicationError("properties: required, an object", field="properties")
    if props.get("build"):
        raise ApplicationError("properties.build: Docker build contexts are not supported; give image and condaFile")
    spec: dict[str, Any] = {}
    if props.get("image"):
        spec["image"] = props["image"]
    if props.get("condaFile"):
        spec["conda_file"] = props["condaFile"]
    if props.get("description"):
        spec["description"] = props["description"]
    if isinstance(props.get("tags"), dict):
        spec["tags"] = props["tags"]
    config = props.get("inferenceConfig")
    if isinstance(config, dict):
        names = {
            "livenessRoute": "liveness_route",
            "readinessRoute": "readiness_route",
            "scoringRoute": "scoring_route",
        }
        spec["inference_config"] = {names[key]: value for key, value in config.items() if key in names and value}
    anonymous = bool(props.get("isAnonymous")) or name == services.ANONYMOUS_ENVIRONMENT
    if not anonymous:
        spec.update({"name": name, "version": version})
    return services.environment_create(spec=spec, user=user, inline=anonymous)


def conda_text(environment: Environment) -> str | None:
    return yaml.safe_dump(environment.conda_file, sort_keys=False) if environment.conda_file is not None else None


# --- endpoints and deployments ---


def endpoint_put(*, name: str, body: Any, user: Any) -> tuple[Endpoint, bool]:
    """Create the endpoint, or update it when it exists; (endpoint, created)."""
    spec = shapes.endpoint_spec(name, body)
    existing = selectors.endpoint_find(name=name)
    if existing is None:
        return services.endpoint_create(spec=spec, user=user), True
    changes = {key: value for key, value in spec.items() if key != "name"}
    return services.endpoint_update(endpoint=existing, changes=changes, user=user), False


def deployment_put(*, endpoint: Endpoint, name: str, body: Any, user: Any) -> tuple[Deployment, bool]:
    """Create the deployment, or update it when it exists; (deployment, created)."""
    props = body.get("properties") if isinstance(body, dict) else None
    code_config = props.get("codeConfiguration") if isinstance(props, dict) else None
    ref = (
        code_ref(str(code_config.get("codeId")))
        if isinstance(code_config, dict) and code_config.get("codeId")
        else None
    )
    spec = shapes.deployment_spec(endpoint.name, name, body, code_ref=ref)
    existing = selectors.deployment_find(endpoint=endpoint.name, name=name)
    if existing is None:
        return services.deployment_create(endpoint=endpoint, spec=spec, user=user), True
    if existing.state == ProvisioningState.DELETING:
        raise Conflict(f"deployment {name!r} is being deleted")
    return services.deployment_update(deployment=existing, changes=spec, user=user), False

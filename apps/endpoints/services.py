"""Writes: every change to models, environments, endpoints and deployments goes through here.

The rules of Azure ML online endpoints live in this one module: names, traffic and mirroring,
deletion while serving, quota. Side effects (reconcile, delete) are queued after commit.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import Max

from apps.accounts.audit import record
from apps.core.errors import ApplicationError, Conflict, NotFound
from apps.core.notify import routing_changed
from apps.endpoints import announce, queue, signals, storage
from apps.endpoints.backends.manifests import options_from_settings, render_manifests
from apps.endpoints.catalog import cores_needed, instance_type_get, quota_used
from apps.endpoints.events import event_record
from apps.endpoints.models import (
    Deployment,
    Endpoint,
    Environment,
    Model,
    ProvisioningState,
    Upload,
)
from apps.endpoints.selectors import (
    deployment_spec_view,
    deployment_yaml,
    endpoint_view,
    environment_get,
    model_get,
)
from apps.endpoints.specs import deployment_spec
from apps.endpoints.tokens import issue_token
from apps.endpoints.yaml import validate_deployment, validate_endpoint, validate_environment, validate_model
from apps.endpoints.yaml.fields import fail, validate
from apps.endpoints.yaml.schemas import INLINE_MODEL

User = AbstractBaseUser | AnonymousUser | None
MAX_DEPLOYMENTS_PER_ENDPOINT = 20
ANONYMOUS_ENVIRONMENT = "CliV2AnonymousEnvironment"
_ASSET_REF = re.compile(
    r"^(?:azureml:)?(?:.*/(?:models|environments)/)?(?P<name>[^:@/]+)(?:(?::|/versions/)(?P<version>[^:@/]+)|@(?P<label>latest))?$"
)


def _actor(user: User) -> Any:
    return user if user is not None and user.is_authenticated else None


def _new_key() -> str:
    return secrets.token_urlsafe(32)


# --- versions (the API's etag) ---


class PreconditionFailed(ApplicationError):
    """The row moved on since the version the caller read (a 412 in the API): the caller must read it again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="If-Match", status=412)


def version_check(*, row: Endpoint | Deployment, if_match: int | None) -> None:
    """Refuse a write based on an older version, naming what changed since, by whom and when."""
    if if_match is None or if_match == row.version:
        return
    what = (
        f"online endpoint {row.name!r}"
        if isinstance(row, Endpoint)
        else f"deployment {row.name!r} of {row.endpoint.name!r}"
    )
    who = row.changed_by.get_username() if row.changed_by else "the studio"
    when = row.updated_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    note = row.change_note or "a change"
    raise PreconditionFailed(
        f"{what} changed since version {if_match}: it is at version {row.version} after {note} "
        f"by {who} at {when}; read it again and retry"
    )


def _version_bump(row: Endpoint | Deployment, *, user: User, note: str) -> None:
    """Mark a user-visible change on the row (saved by the caller)."""
    row.version += 1
    row.changed_by = _actor(user)
    row.change_note = note[:255]


def _audited_spec(view: dict[str, Any]) -> dict[str, Any]:
    """A deployment spec as the audit trail keeps it: environment variable values are not copied (secrets)."""
    variables = view.get("environment_variables")
    if isinstance(variables, dict) and variables:
        return {**view, "environment_variables": dict.fromkeys(variables, "(set)")}
    return view


# --- uploads ---


def upload_create(*, stream: storage.Readable, kind: str, name: str, user: User = None) -> Upload:
    """Store an uploaded file, or a folder sent as a zip or tar archive (checked for path traversal)."""
    if kind not in Upload.Kind.values:
        raise ApplicationError(f"kind: expected file or folder, got {kind!r}", field="kind")
    name = name.strip()
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ApplicationError(f"name: expected a plain file or folder name, got {name!r}", field="name")
    upload = Upload(name=name, kind=kind, created_by=_actor(user))
    upload.root.mkdir(parents=True, exist_ok=True)
    try:
        if kind == Upload.Kind.FILE:
            storage.write_stream(stream, upload.path)
        else:
            with tempfile.TemporaryDirectory(dir=upload.root) as tmp:
                archive = Path(tmp) / "archive"
                storage.write_stream(stream, archive)
                storage.extract_archive(archive, upload.path)
        upload.sha256, upload.size, upload.file_count = storage.tree_digest(upload.path)
        upload.full_clean()
        upload.save()
    except BaseException:
        shutil.rmtree(upload.root, ignore_errors=True)
        raise
    return upload


def upload_adopt(*, source: Path, name: str, user: User = None) -> Upload:
    """Store a file or folder already on the studio's disk (a blob upload) as an upload, moving it in."""
    name = name.strip()
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ApplicationError(f"name: expected a plain file or folder name, got {name!r}", field="name")
    kind = Upload.Kind.FOLDER if source.is_dir() else Upload.Kind.FILE
    upload = Upload(name=name, kind=kind, created_by=_actor(user))
    upload.root.mkdir(parents=True, exist_ok=True)
    try:
        shutil.move(source, upload.path)
        upload.sha256, upload.size, upload.file_count = storage.tree_digest(upload.path)
        if upload.size > settings.STUDIO_MAX_UPLOAD_BYTES:
            raise ApplicationError(f"file: larger than {settings.STUDIO_MAX_UPLOAD_BYTES} bytes", field="file")
        upload.full_clean()
        upload.save()
    except BaseException:
        shutil.rmtree(upload.root, ignore_errors=True)
        raise
    return upload


def _upload_from_ref(ref: str, *, field: str) -> Upload:
    if not ref.startswith("upload:"):
        raise ApplicationError(
            f"{field}: expected an uploaded file or folder (upload:<id>), got {ref!r}; "
            "the studio CLI uploads local paths for you",
            field=field,
        )
    try:
        return Upload.objects.get(uid=ref.removeprefix("upload:"))
    except (Upload.DoesNotExist, ValueError, Exception) as exc:
        if isinstance(exc, ApplicationError):
            raise
        raise ApplicationError(f"{field}: upload {ref!r} does not exist", field=field) from None


# --- models and environments ---


@transaction.atomic
def model_create(*, spec: dict[str, Any], user: User = None) -> Model:
    """Register a model version from an upload; the version increments when not given."""
    spec = validate_model(spec)
    return _model_register(spec, user=user)


def _model_register(spec: dict[str, Any], *, user: User, anonymous: bool = False) -> Model:
    upload = _upload_from_ref(spec["path"], field="path")
    name = spec["name"]
    if spec.get("version") is not None:
        if not str(spec["version"]).isdigit():
            raise fail("version", f"expected a whole number, got {spec['version']!r}")
        version = int(spec["version"])
        if Model.objects.filter(name=name, version=version).exists():
            raise Conflict(
                f"model {name}:{version} already exists; omit version to register the next one", field="version"
            )
    else:
        version = (Model.objects.filter(name=name).aggregate(top=Max("version"))["top"] or 0) + 1
    model = Model(
        name=name,
        version=version,
        type=spec["type"],
        description=spec["description"],
        tags=spec["tags"],
        path_name=upload.name,
        is_folder=upload.kind == Upload.Kind.FOLDER,
        size=upload.size,
        file_count=upload.file_count,
        anonymous=anonymous,
        created_by=_actor(user),
    )
    model.full_clean()
    target = model.root / upload.name
    shutil.rmtree(model.root, ignore_errors=True)
    storage.copy_tree(upload.path, target)
    try:
        with transaction.atomic():
            model.save()
    except IntegrityError:
        raise Conflict(f"model {name}:{version} was registered at the same moment; try again") from None
    record("model.create", target=f"model {name}:{version}", after={"type": model.type, "path": upload.name}, user=user)
    return model


@transaction.atomic
def environment_create(*, spec: dict[str, Any], user: User = None, inline: bool = False) -> Environment:
    """Register an environment version (or find the identical one); inline ones get a hash version."""
    raw_conda = spec.get("conda_file")
    typed = raw_conda if isinstance(raw_conda, str) else ""
    spec = validate_environment(spec, inline=inline)
    fields = {
        "image": spec["image"],
        "conda_file": spec.get("conda_file"),
        "pip_requirements": spec["pip_requirements"],
        "inference_config": spec.get("inference_config"),
        "description": spec["description"],
        "tags": spec["tags"],
    }
    if not (fields["image"] or fields["conda_file"] or fields["pip_requirements"]):
        raise fail("image", "an environment needs an image, a conda_file or pip_requirements")
    name = spec.get("name")
    anonymous = inline and not name
    probe = Environment(name=name or ANONYMOUS_ENVIRONMENT, version="", **fields)
    if anonymous:
        existing = Environment.objects.filter(name=ANONYMOUS_ENVIRONMENT, version=probe.spec_hash).first()
        if existing:
            return existing
        probe.version = probe.spec_hash
        probe.anonymous = True
    elif spec.get("version") is not None:
        version = str(spec["version"])
        existing = Environment.objects.filter(name=name, version=version).first()
        if existing:
            if existing.spec_hash == probe.spec_hash:
                return existing
            raise Conflict(
                f"environment {name}:{version} already exists with a different image or packages; "
                "give a new version or omit it",
                field="version",
            )
        probe.version = version
    else:
        numeric = [
            int(v) for v in Environment.objects.filter(name=name).values_list("version", flat=True) if v.isdigit()
        ]
        probe.version = str(max(numeric, default=0) + 1)
    probe.created_by = _actor(user)
    probe.conda_text = typed
    probe.full_clean()
    probe.save()
    if not anonymous:
        record("environment.create", target=f"environment {probe.name}:{probe.version}", after=fields, user=user)
    return probe


def _parse_asset_ref(ref: str, *, field: str) -> tuple[str, str | None]:
    match = _ASSET_REF.match(ref.strip())
    if not match:
        raise fail(field, f"expected azureml:<name>:<version> or azureml:<name>@latest, got {ref!r}")
    return match["name"], match["version"]


# --- endpoints ---


def _check_traffic(endpoint: Endpoint, traffic: dict[str, int], mirror: dict[str, int]) -> tuple[dict, dict]:
    """Azure's traffic rules; returns traffic listing every deployment and mirror without zeros."""
    names = set(endpoint.deployments.exclude(state=ProvisioningState.DELETING).values_list("name", flat=True))
    for name in traffic:
        if name not in names:
            raise fail(
                "traffic", f"names deployment {name!r}, which does not exist in online endpoint {endpoint.name!r}"
            )
    total = sum(traffic.values())
    if total not in (0, 100):
        raise fail("traffic", f"must sum to 0 or 100, got {total} ({_format_percent(traffic)})")
    mirror = {name: percent for name, percent in mirror.items() if percent}
    if len(mirror) > 1:
        raise fail("mirror_traffic", f"can go to one deployment only, got {len(mirror)}: {_format_percent(mirror)}")
    for name, percent in mirror.items():
        if name not in names:
            raise fail(
                "mirror_traffic",
                f"names deployment {name!r}, which does not exist in online endpoint {endpoint.name!r}",
            )
        if percent > 50:
            raise fail("mirror_traffic", f"can be at most 50 percent, got {name}={percent}")
        if traffic.get(name, 0) > 0:
            raise fail(
                "mirror_traffic",
                f"deployment {name!r} takes {traffic[name]} % of live traffic; "
                "a deployment cannot take live and mirrored traffic",
            )
    full = {name: traffic.get(name, 0) for name in sorted(names)}
    return full, mirror


def _format_percent(values: dict[str, int]) -> str:
    return " ".join(f"{name}={percent}" for name, percent in values.items()) or "nothing"


@transaction.atomic
def endpoint_create(*, spec: dict[str, Any], user: User = None) -> Endpoint:
    """Create an online endpoint with fresh keys; it serves once a deployment takes traffic."""
    spec = validate_endpoint(spec)
    if Endpoint.objects.filter(name=spec["name"]).exists():
        raise Conflict(f"online endpoint {spec['name']!r} already exists; use update to change it", field="name")
    if any(spec["traffic"].values()) or any(spec["mirror_traffic"].values()):
        names = ", ".join(name for name, p in {**spec["traffic"], **spec["mirror_traffic"]}.items() if p)
        raise fail("traffic", f"cannot be set when the endpoint is created: deployment {names} does not exist yet")
    endpoint = Endpoint(
        name=spec["name"],
        description=spec["description"],
        tags=spec["tags"],
        auth_mode=spec["auth_mode"],
        compute=spec["compute"],
        public_network_access=spec["public_network_access"],
        local=spec["local"],
        primary_key=_new_key(),
        secondary_key=_new_key(),
        token_secret=_new_key(),
        traffic={},
        mirror_traffic={},
        created_by=_actor(user),
    )
    endpoint.full_clean()
    endpoint.save()
    after = {key: spec[key] for key in ("auth_mode", "description", "tags", "local")}
    record("endpoint.create", endpoint=endpoint.name, target=f"endpoint {endpoint.name}", after=after, user=user)
    routing_changed(endpoint.name)
    return endpoint


ENDPOINT_MUTABLE = ("description", "tags", "traffic", "mirror_traffic", "auth_mode", "public_network_access")


@transaction.atomic
def endpoint_update(
    *,
    endpoint: Endpoint,
    changes: dict[str, Any],
    user: User = None,
    if_match: int | None = None,
    force: bool = False,
    origin: str = "user",
) -> Endpoint:
    """Change an endpoint's description, tags, auth mode, traffic or mirroring.

    With `if_match` the change is refused (412) if the endpoint's version moved on. A traffic change
    asks the apps above first (signals.traffic_changing): a running rollout refuses it unless `force`.
    """
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    version_check(row=endpoint, if_match=if_match)
    current = {
        key: value for key, value in endpoint_view(endpoint).items() if key in ("name", "compute", *ENDPOINT_MUTABLE)
    }
    current = {key: value for key, value in current.items() if value is not None}
    if "name" in changes and changes["name"] != endpoint.name:
        raise fail("name", f"cannot be changed (from {endpoint.name!r} to {changes['name']!r})")
    if "compute" in changes and (changes["compute"] or "") != endpoint.compute:
        raise fail("compute", "cannot be changed after the endpoint is created")
    if "local" in changes and bool(changes["local"]) != endpoint.local:
        raise fail("local", "cannot be changed after the endpoint is created (create a new endpoint)")
    if endpoint.local:
        for key in ("traffic", "mirror_traffic"):
            if any((changes.get(key) or {}).values()):
                raise fail(key, f"is not supported for the local endpoint {endpoint.name!r}: {_LOCAL_ROUTING}")
    spec = validate_endpoint({**current, **changes})
    notes = []
    if "traffic" in changes or "mirror_traffic" in changes:
        note = _traffic_apply(endpoint, spec["traffic"], spec["mirror_traffic"], user=user, force=force, origin=origin)
        if note:
            notes.append(note)
    if spec["auth_mode"] != endpoint.auth_mode:
        routing_changed(endpoint.name)
    before, after = {}, {}
    for key in ("description", "tags", "auth_mode", "public_network_access"):
        if getattr(endpoint, key) != spec[key]:
            notes.append(f"{key} changed")
            before[key], after[key] = getattr(endpoint, key), spec[key]
        setattr(endpoint, key, spec[key])
    if notes:
        _version_bump(endpoint, user=user, note="; ".join(notes))
    endpoint.full_clean()
    endpoint.save()
    if after:
        target = f"endpoint {endpoint.name}"
        record("endpoint.update", endpoint=endpoint.name, target=target, before=before, after=after, user=user)
    return endpoint


@transaction.atomic
def traffic_set(
    *,
    endpoint: Endpoint,
    traffic: dict[str, int] | None = None,
    mirror_traffic: dict[str, int] | None = None,
    user: User = None,
    if_match: int | None = None,
    force: bool = False,
    origin: str = "user",
) -> Endpoint:
    """Set the live traffic split and/or the mirror; recorded in the endpoint's history."""
    changes: dict[str, Any] = {}
    if traffic is not None:
        changes["traffic"] = traffic
    if mirror_traffic is not None:
        changes["mirror_traffic"] = mirror_traffic
    return endpoint_update(endpoint=endpoint, changes=changes, user=user, if_match=if_match, force=force, origin=origin)


def _split_text(traffic: dict[str, int], mirror: dict[str, int]) -> str:
    text = " ".join(f"{name}={percent}" for name, percent in traffic.items() if percent) or "none"
    return text + "".join(f" (mirror {name}={percent})" for name, percent in mirror.items() if percent)


def _traffic_apply(
    endpoint: Endpoint, traffic: dict[str, int], mirror: dict[str, int], *, user: User, force: bool, origin: str
) -> str:
    traffic, mirror = _check_traffic(endpoint, traffic, mirror)
    if traffic == endpoint.traffic and mirror == endpoint.mirror_traffic:
        return ""
    signals.traffic_changing.send(
        sender=Endpoint, endpoint=endpoint, user=_actor(user), force=force, origin=origin, traffic=traffic
    )
    # The traffic history is these audit entries (selectors.traffic_changes reads them).
    record(
        "traffic.set",
        endpoint=endpoint.name,
        target=f"endpoint {endpoint.name}",
        before={"traffic": endpoint.traffic, "mirror_traffic": endpoint.mirror_traffic},
        after={"traffic": traffic, "mirror_traffic": mirror},
        user=user,
        by="" if origin == "user" else origin,
    )
    note = f"traffic {_split_text(endpoint.traffic, endpoint.mirror_traffic)} → {_split_text(traffic, mirror)}"
    endpoint.traffic = traffic
    endpoint.mirror_traffic = mirror
    routing_changed(endpoint.name)
    announce.endpoint_changed(endpoint.pk)
    return note


_LOCAL_ROUTING = "its one deployment takes every request, with no key"


def _refuse_local(endpoint: Endpoint, what: str) -> None:
    if endpoint.local:
        raise ApplicationError(f"online endpoint {endpoint.name!r} is local: {what} ({_LOCAL_ROUTING})")


def endpoint_keys(*, endpoint: Endpoint) -> dict[str, str]:
    """The endpoint's primary and secondary keys (key auth only; a local endpoint has none)."""
    _refuse_local(endpoint, "it has no keys")
    if endpoint.auth_mode != Endpoint.AuthMode.KEY:
        raise ApplicationError(
            f"online endpoint {endpoint.name!r} uses {endpoint.auth_mode} auth and has no keys; use get-token"
        )
    return {"primaryKey": endpoint.primary_key, "secondaryKey": endpoint.secondary_key}


@transaction.atomic
def keys_regenerate(*, endpoint: Endpoint, key_type: str, key_value: str | None = None) -> Endpoint:
    """Replace the primary or the secondary key (the other keeps working)."""
    _refuse_local(endpoint, "it has no keys")
    kind = key_type.strip().lower()
    if kind not in ("primary", "secondary"):
        raise fail("keyType", f"expected primary or secondary, got {key_type!r}")
    if endpoint.auth_mode != Endpoint.AuthMode.KEY:
        raise ApplicationError(f"online endpoint {endpoint.name!r} uses {endpoint.auth_mode} auth, which has no keys")
    if key_value is not None and not re.fullmatch(r"[A-Za-z0-9_\-]{16,128}", key_value):
        raise fail("keyValue", "expected 16 to 128 letters, digits, '-' or '_'")
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    setattr(endpoint, f"{kind}_key", key_value or _new_key())
    _version_bump(endpoint, user=None, note=f"the {kind} key was regenerated")
    endpoint.save(update_fields=[f"{kind}_key", "version", "changed_by", "change_note", "updated_at"])
    record("keys.regenerate", endpoint=endpoint.name, target=f"{kind} key of endpoint {endpoint.name}")
    routing_changed(endpoint.name)
    return endpoint


def token_issue(*, endpoint: Endpoint) -> dict[str, str]:
    """A bearer token for an aml_token endpoint, with its expiry and when to refresh it."""
    _refuse_local(endpoint, "it takes no tokens")
    if endpoint.auth_mode != Endpoint.AuthMode.AML_TOKEN:
        raise ApplicationError(
            f"online endpoint {endpoint.name!r} uses key auth; get-token is for aml_token endpoints "
            "(use get-credentials for its keys)"
        )
    lifetime = settings.STUDIO_TOKEN_LIFETIME_S
    token, expires = issue_token(endpoint=endpoint.name, secret=endpoint.token_secret, lifetime_s=lifetime)
    refresh = expires - lifetime // 2
    return {
        "accessToken": token,
        "tokenType": "Bearer",
        "expiryTimeUtc": datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "refreshAfterTimeUtc": datetime.fromtimestamp(refresh, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@transaction.atomic
def endpoint_delete(*, endpoint: Endpoint, user: User = None) -> None:
    """Delete an endpoint and all its deployments (their instances stop in the background)."""
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    deployments = list(endpoint.deployments.all())
    record("endpoint.delete", endpoint=endpoint.name, target=f"endpoint {endpoint.name}", user=user)
    routing_changed(endpoint.name)
    if not deployments:
        endpoint.delete()
        return
    endpoint.traffic = {}
    endpoint.mirror_traffic = {}
    endpoint.provisioning_state = ProvisioningState.DELETING
    endpoint.save()
    for deployment in deployments:
        _deployment_mark_deleting(deployment)


# --- deployments ---


def _resolve(endpoint: Endpoint, spec: dict[str, Any], *, user: User, deployment_name: str) -> dict[str, Any]:
    """Turn the YAML's references (model, environment, code, instance type) into rows and paths."""
    resolved: dict[str, Any] = {}
    model_ref = spec.get("model")
    if isinstance(model_ref, str):
        name, version = _parse_asset_ref(model_ref, field="model")
        try:
            resolved["model"] = model_get(name=name, version=version)
        except NotFound as exc:
            raise fail("model", exc.message) from None
    elif isinstance(model_ref, dict):
        inline = validate(model_ref, INLINE_MODEL, path="model")
        anonymous = not inline.get("name")
        inline["name"] = inline.get("name") or f"{endpoint.name}-{deployment_name}-model"
        try:
            resolved["model"] = _model_register(inline, user=user, anonymous=anonymous)
        except ApplicationError as exc:
            raise fail("model", exc.message) from None
    else:
        resolved["model"] = None

    env_ref = spec["environment"]
    if isinstance(env_ref, str):
        name, version = _parse_asset_ref(env_ref, field="environment")
        try:
            resolved["environment"] = environment_get(name=name, version=version)
        except NotFound as exc:
            raise fail("environment", exc.message) from None
    else:
        try:
            resolved["environment"] = environment_create(spec=env_ref, user=user, inline=True)
        except ApplicationError as exc:
            raise fail("environment", exc.message.removeprefix("environment: ")) from None

    code = spec.get("code_configuration")
    resolved["code_path"] = ""
    resolved["scoring_script"] = ""
    if code:
        ref = code["code"]
        if ref.startswith("code:"):
            code_path = f"code/{ref.removeprefix('code:')}"
            if not (Path(settings.MEDIA_ROOT) / code_path).is_dir():
                raise fail("code_configuration.code", f"code snapshot {ref!r} does not exist")
        else:
            upload = _upload_from_ref(ref, field="code_configuration.code")
            if upload.kind != Upload.Kind.FOLDER:
                raise fail("code_configuration.code", f"expected a folder, got the file {upload.name!r}")
            code_path = storage.code_snapshot(upload.path)
        script = code["scoring_script"]
        script_path = Path(settings.MEDIA_ROOT) / code_path / script
        if ".." in Path(script).parts or Path(script).is_absolute() or not script_path.is_file():
            files = ", ".join(storage.list_files(Path(settings.MEDIA_ROOT) / code_path)[:20]) or "no files"
            raise fail(
                "code_configuration.scoring_script", f"{script!r} is not a file in the code folder (it has: {files})"
            )
        resolved["code_path"] = code_path
        resolved["scoring_script"] = script
    elif resolved["model"] is not None and resolved["model"].type != Model.Type.MLFLOW:
        raise fail("code_configuration", "is required unless the model is an mlflow_model (no-code deployment)")

    instance_type = spec.get("instance_type") or "Standard_DS3_v2"
    resolved["instance_type"] = instance_type_get(name=instance_type)
    return resolved


def _check_quota(*, instance_count: int, vcpus: int, instance_type: str, exclude: Deployment | None) -> None:
    needed = cores_needed(instance_count=instance_count, vcpus=vcpus)
    used = quota_used(exclude=exclude)
    limit = settings.STUDIO_CORE_QUOTA
    if needed > limit - used:
        raise ApplicationError(
            f"OutOfQuota: instance_count {instance_count} of {instance_type} needs {needed} cores "
            f"(ceil(1.2 × {instance_count}) × {vcpus} vCPUs) but only {max(0, limit - used)} of the "
            f"{limit}-core quota are free",
            field="instance_count",
        )


def _apply_spec(deployment: Deployment, spec: dict[str, Any], resolved: dict[str, Any]) -> None:
    deployment.description = spec["description"]
    deployment.tags = spec["tags"]
    deployment.kind = spec["type"]
    deployment.model = resolved["model"]
    deployment.environment = resolved["environment"]
    deployment.code_path = resolved["code_path"]
    deployment.scoring_script = resolved["scoring_script"]
    deployment.environment_variables = spec["environment_variables"]
    deployment.instance_type = resolved["instance_type"].name
    deployment.instance_count = spec["instance_count"]
    deployment.scale_settings = spec["scale_settings"]
    deployment.request_settings = spec["request_settings"]
    deployment.liveness_probe = spec["liveness_probe"]
    deployment.readiness_probe = spec["readiness_probe"]
    extra_keys = (
        "app_insights_enabled",
        "model_mount_path",
        "resources",
        "egress_public_network_access",
        "private_network_connection",
    )
    deployment.extra = {key: spec[key] for key in extra_keys if spec.get(key) is not None}


def _queue_reconcile(deployment: Deployment) -> None:
    queue.reconcile_after_commit(deployment.pk)


@transaction.atomic
def deployment_create(*, endpoint: Endpoint, spec: dict[str, Any], user: User = None) -> Deployment:
    """Validate and store a new deployment (state Creating); a worker then makes it run."""
    spec = validate_deployment(spec)
    name = spec["name"]
    # Locked and re-read: concurrent creates must not overwrite each other's traffic entries.
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    if spec.get("endpoint_name") and spec["endpoint_name"] != endpoint.name:
        raise fail("endpoint_name", f"{spec['endpoint_name']!r} does not match the endpoint {endpoint.name!r}")
    if endpoint.provisioning_state == ProvisioningState.DELETING:
        raise Conflict(f"online endpoint {endpoint.name!r} is being deleted")
    if endpoint.deployments.filter(name=name).exists():
        raise Conflict(
            f"deployment {name!r} already exists in online endpoint {endpoint.name!r}; use update", field="name"
        )
    if endpoint.local:
        other = endpoint.deployments.exclude(state=ProvisioningState.DELETING).first()
        if other is not None:
            raise Conflict(
                f"online endpoint {endpoint.name!r} is local and already has deployment {other.name!r}; a local "
                "endpoint has one deployment: update it, or delete it first",
                field="name",
            )
    if endpoint.deployments.count() >= MAX_DEPLOYMENTS_PER_ENDPOINT:
        raise ApplicationError(
            f"online endpoint {endpoint.name!r} already has {MAX_DEPLOYMENTS_PER_ENDPOINT} deployments"
        )
    resolved = _resolve(endpoint, spec, user=user, deployment_name=name)
    instance_type = resolved["instance_type"]
    _check_quota(
        instance_count=spec["instance_count"], vcpus=instance_type.vcpus, instance_type=instance_type.name, exclude=None
    )
    deployment = Deployment(endpoint=endpoint, name=name, created_by=_actor(user))
    _apply_spec(deployment, spec, resolved)
    deployment.full_clean()
    deployment.save()
    record(
        "deployment.create",
        endpoint=endpoint.name,
        target=f"deployment {name}",
        after=_audited_spec(deployment_spec_view(deployment)),
        user=user,
    )
    event_record(
        deployment=deployment,
        reason="Creating",
        message=f"generation 1: {deployment.instance_count} × {deployment.instance_type}",
    )
    if name not in endpoint.traffic and not endpoint.local:  # a local endpoint has no traffic rules
        Endpoint.objects.filter(pk=endpoint.pk).update(traffic={**endpoint.traffic, name: 0})
        announce.endpoint_changed(endpoint.pk)
    routing_changed(endpoint.name)
    _queue_reconcile(deployment)
    return deployment


@transaction.atomic
def deployment_update(
    *, deployment: Deployment, changes: dict[str, Any], user: User = None, if_match: int | None = None
) -> Deployment:
    """Change a deployment's spec; a worker rolls it out (Scaling when only the count changed).

    With `if_match` the change is refused (412) if the deployment's version moved on.
    """
    deployment = Deployment.objects.select_for_update().select_related("endpoint").get(pk=deployment.pk)
    version_check(row=deployment, if_match=if_match)
    if deployment.state == ProvisioningState.DELETING:
        raise Conflict(f"deployment {deployment.name!r} is being deleted")
    current = deployment_spec_view(deployment)
    for key in ("name", "endpoint_name", "type"):
        if key in changes and changes[key] != current.get(key):
            raise fail(key, f"cannot be changed (from {current.get(key)!r} to {changes[key]!r})")
    spec = validate_deployment({**current, **changes})
    resolved = _resolve(deployment.endpoint, spec, user=user, deployment_name=deployment.name)
    before = deployment_spec_view(deployment)
    _apply_spec(deployment, spec, resolved)
    after = deployment_spec_view(deployment)
    changed = {key for key in set(before) | set(after) if before.get(key) != after.get(key)}
    if not changed:
        return deployment
    instance_type = resolved["instance_type"]
    _check_quota(
        instance_count=deployment.instance_count,
        vcpus=instance_type.vcpus,
        instance_type=instance_type.name,
        exclude=deployment,
    )
    only_count = changed <= {"instance_count"}
    if only_count:
        note = f"instance_count {before.get('instance_count')} → {after.get('instance_count')}"
    else:
        note = f"changed {', '.join(sorted(changed))}"
    _version_bump(deployment, user=user, note=note)
    deployment.generation += 1
    deployment.state = ProvisioningState.SCALING if only_count else ProvisioningState.UPDATING
    deployment.reason = ""
    deployment.message = ""
    deployment.full_clean()
    deployment.save()
    record(
        "deployment.scale" if only_count else "deployment.update",
        endpoint=deployment.endpoint.name,
        target=f"deployment {deployment.name}",
        before=_audited_spec({key: before.get(key) for key in sorted(changed)}),
        after=_audited_spec({key: after.get(key) for key in sorted(changed)}),
        user=user,
    )
    event_record(
        deployment=deployment,
        reason=deployment.state,
        message=f"generation {deployment.generation}: changed {', '.join(sorted(changed))}",
    )
    if "request_settings" in changed:
        routing_changed(deployment.endpoint.name)
    _queue_reconcile(deployment)
    return deployment


@transaction.atomic
def deployment_scale(
    *, deployment: Deployment, instance_count: int, reason: str, user: User = None, if_match: int | None = None
) -> Deployment:
    """Set the instance count (autoscale and the UI use this); the reason goes on the timeline."""
    if not 1 <= instance_count <= 50:
        raise fail("instance_count", f"expected an integer from 1 to 50, got {instance_count}")
    updated = deployment_update(
        deployment=deployment, changes={"instance_count": instance_count}, user=user, if_match=if_match
    )
    if updated.generation != deployment.generation:
        event_record(deployment=updated, reason="ScaleDecision", message=reason)
    return updated


def deployment_update_preview(
    *, deployment: Deployment, changes: dict[str, Any], user: User = None, if_match: int | None = None
) -> tuple[str, str]:
    """The deployment's YAML now and after `changes` (before and after of the Edit flow's diff); nothing is kept.

    The change goes through deployment_update itself inside a transaction that is then rolled back, so
    the preview refuses exactly what the update would refuse and shows exactly what it would store.
    """
    before = deployment_yaml(deployment, viewer=user)  # the diff is shown to the user making the change
    with transaction.atomic():
        row = deployment_update(deployment=deployment, changes=changes, user=user, if_match=if_match)
        row.refresh_from_db()
        after = deployment_yaml(row, viewer=user)
        transaction.set_rollback(True)
    return before, after


def deployment_render(*, endpoint: Endpoint, spec: dict[str, Any], user: User = None) -> str:
    """The Kubernetes manifests a deployment spec runs as (multi-document YAML); nothing is stored or applied.

    The spec goes through the same validation and resolution as create or update, inside a
    transaction that is then rolled back, so what is printed is exactly what would be applied.
    """
    with transaction.atomic():
        existing = endpoint.deployments.filter(name=spec.get("name")).first()
        if existing is not None:
            row = deployment_update(deployment=existing, changes=spec, user=user)
        else:
            row = deployment_create(endpoint=endpoint, spec=spec, user=user)
        row.refresh_from_db()
        frozen = deployment_spec(row)
        # A deployment the studio does not hold gets a download credential revoked with its endpoint (GitOps).
        scope: Literal["deployment", "endpoint"] = "deployment" if existing is not None else "endpoint"
        text = render_manifests(frozen, options_from_settings(frozen, scope=scope))
        transaction.set_rollback(True)
    return text


def _deployment_mark_deleting(deployment: Deployment) -> None:
    Deployment.objects.filter(pk=deployment.pk).update(state=ProvisioningState.DELETING, reason="", message="")
    event_record(deployment=deployment, reason="Deleting", message="instances are being stopped")
    routing_changed(deployment.endpoint.name)
    queue.delete_after_commit(deployment.pk)


@transaction.atomic
def deployment_delete(*, deployment: Deployment, user: User = None) -> None:
    """Delete a deployment that takes no live or mirrored traffic."""
    endpoint = Endpoint.objects.select_for_update().get(pk=deployment.endpoint_id)
    live = endpoint.traffic.get(deployment.name, 0)
    if live:
        raise Conflict(
            f"deployment {deployment.name!r} takes {live} % of the live traffic of online endpoint {endpoint.name!r}; "
            "move its traffic to other deployments first (online-endpoint update --traffic)"
        )
    if endpoint.mirror_traffic.get(deployment.name, 0):
        raise Conflict(
            f"deployment {deployment.name!r} receives {endpoint.mirror_traffic[deployment.name]} % mirrored traffic; "
            f'stop the mirror first (online-endpoint update --mirror-traffic "{deployment.name}=0")'
        )
    if deployment.name in endpoint.traffic:
        endpoint.traffic = {name: p for name, p in endpoint.traffic.items() if name != deployment.name}
        _version_bump(endpoint, user=user, note=f"deployment {deployment.name!r} was deleted")
        endpoint.save(update_fields=["traffic", "version", "changed_by", "change_note", "updated_at"])
        announce.endpoint_changed(endpoint.pk)
    record("deployment.delete", endpoint=endpoint.name, target=f"deployment {deployment.name}", user=user)
    _deployment_mark_deleting(deployment)

"""Reads: look-ups that raise NotFound with a clear message, and the Azure-shaped views of each row."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import QuerySet

from apps.accounts.models import AuditEntry
from apps.accounts.roles import allowed, needs, role_of
from apps.accounts.selectors import traffic_changes as audit_traffic_changes
from apps.core.errors import ApplicationError, NotFound
from apps.endpoints import storage
from apps.endpoints.models import (
    Deployment,
    DeploymentEvent,
    Endpoint,
    Environment,
    Instance,
    Model,
    ProvisioningState,
)
from apps.endpoints.yaml import text as yaml_text
from gateway.wire import DeploymentRow, EndpointRow, instance_secret

# Environment-variable values may hold secrets: shown only to a role that may read keys.
SECRETS_ACTION = "secrets.read"
HIDDEN_KEY = "environment_variables_hidden"

BUSY_STATES = (ProvisioningState.CREATING, ProvisioningState.UPDATING, ProvisioningState.SCALING)


def endpoint_get(*, name: str) -> Endpoint:
    """The endpoint with that name."""
    try:
        return Endpoint.objects.get(name=name)
    except Endpoint.DoesNotExist:
        raise NotFound(f"online endpoint {name!r} does not exist") from None


def deployment_get(*, endpoint: Endpoint, name: str) -> Deployment:
    """The endpoint's deployment with that name."""
    try:
        return endpoint.deployments.select_related("endpoint", "model", "environment").get(name=name)
    except Deployment.DoesNotExist:
        raise NotFound(f"deployment {name!r} does not exist in online endpoint {endpoint.name!r}") from None


def model_get(*, name: str, version: str | int | None) -> Model:
    """A model version; `latest` or None for the highest version."""
    versions = Model.objects.filter(name=name)
    if version in (None, "latest"):
        model = versions.order_by("-version").first()
        if model is None:
            raise NotFound(f"model {name!r} does not exist")
        return model
    try:
        return versions.get(version=int(version))
    except (ValueError, TypeError):
        raise ApplicationError(f"model version must be a whole number or latest, got {version!r}") from None
    except Model.DoesNotExist:
        raise NotFound(f"model {name}:{version} does not exist") from None


def environment_get(*, name: str, version: str | None) -> Environment:
    """An environment version; `latest` or None for the newest."""
    versions = Environment.objects.filter(name=name)
    if version in (None, "latest"):
        environment = versions.order_by("-created_at", "-id").first()
        if environment is None:
            raise NotFound(f"environment {name!r} does not exist")
        return environment
    try:
        return versions.get(version=str(version))
    except Environment.DoesNotExist:
        raise NotFound(f"environment {name}:{version} does not exist") from None


def endpoints_list() -> QuerySet[Endpoint]:
    return Endpoint.objects.all().order_by("name")


def deployments_list(*, endpoint: Endpoint) -> QuerySet[Deployment]:
    return endpoint.deployments.select_related("endpoint", "model", "environment").order_by("name")


def endpoint_exists(*, name: str) -> bool:
    """Whether an endpoint has that name (a websocket asks before it joins the endpoint's group)."""
    return Endpoint.objects.filter(name=name).exists()


def endpoint_find(*, name: str) -> Endpoint | None:
    """The endpoint with that name, or None."""
    return Endpoint.objects.filter(name=name).first()


def deployment_find(*, endpoint: str, name: str) -> Deployment | None:
    """The deployment by endpoint and deployment name, or None when either is gone."""
    return (
        Deployment.objects.select_related("endpoint", "model", "environment")
        .filter(endpoint__name=endpoint, name=name)
        .first()
    )


# --- reads of the studio's pages ---


def models_latest() -> list[tuple[Model, int]]:
    """Every model name's newest version with how many versions it has, by name."""
    latest: dict[str, Model] = {}
    counts: dict[str, int] = {}
    for model in Model.objects.order_by("name", "-version"):
        latest.setdefault(model.name, model)
        counts[model.name] = counts.get(model.name, 0) + 1
    return [(model, counts[name]) for name, model in latest.items()]


def models_list(*, name: str | None = None) -> QuerySet[Model]:
    """Every model version (of one name when given), by name then newest first."""
    rows = Model.objects.order_by("name", "-version")
    return rows.filter(name=name) if name else rows


def model_versions(*, name: str, max_files: int = 200) -> list[dict[str, Any]]:
    """A model's versions, newest first, each with its files (at most `max_files`) and the deployments using it."""
    versions = list(Model.objects.filter(name=name).order_by("-version"))
    if not versions:
        raise NotFound(f"model {name!r} does not exist")
    rows = []
    for model in versions:
        folder = model.root / model.path_name
        files = storage.list_files(folder) if folder.exists() else []
        rows.append(
            {
                "model": model,
                "files": files[:max_files],
                "more_files": max(0, len(files) - max_files),
                "deployments": list(model.deployments.select_related("endpoint").order_by("endpoint__name", "name")),
            }
        )
    return rows


def environments_list(*, name: str | None = None) -> QuerySet[Environment]:
    """Every named (not anonymous) environment version, by name then newest first."""
    rows = Environment.objects.filter(anonymous=False).order_by("name", "-created_at", "-id")
    return rows.filter(name=name) if name else rows


def environments_latest() -> list[tuple[Environment, int]]:
    """Every named environment's newest version with how many versions it has, by name."""
    latest: dict[str, Environment] = {}
    counts: dict[str, int] = {}
    for environment in environments_list():
        latest.setdefault(environment.name, environment)
        counts[environment.name] = counts.get(environment.name, 0) + 1
    return [(environment, counts[name]) for name, environment in latest.items()]


def environment_build_log(environment: Environment, *, max_chars: int = 20000) -> str | None:
    """The end of the local backend's build log of this environment, when it has built it."""
    root = Path(settings.STUDIO_ENVS_DIR)
    for candidate in (root / f"{environment.spec_hash}.build.log", root / environment.spec_hash / "build.log"):
        if candidate.is_file():
            return candidate.read_text(errors="replace")[-max_chars:]
    return None


def environment_versions(*, name: str) -> list[dict[str, Any]]:
    """An environment's versions, newest first, each with its build log and the deployments using it."""
    versions = list(Environment.objects.filter(name=name).order_by("-created_at", "-id"))
    if not versions:
        raise NotFound(f"environment {name!r} does not exist")
    return [
        {
            "environment": environment,
            "build_log": environment_build_log(environment),
            "deployments": list(environment.deployments.select_related("endpoint")),
        }
        for environment in versions
    ]


def deploy_prerequisites() -> dict[str, bool]:
    """Whether there is a model and a named environment to deploy (the deployment forms say what is missing)."""
    return {
        "has_models": Model.objects.exists(),
        "has_environments": Environment.objects.filter(anonymous=False).exists(),
    }


def endpoints_with_deployments() -> list[Endpoint]:
    """Every endpoint with its deployments fetched (`endpoint.deployments.all()` costs no query)."""
    return list(endpoints_list().prefetch_related("deployments"))


def endpoint_state(endpoint: Endpoint) -> str:
    """The endpoint's state: the one word the list, its page, the API and the CLI show.

    It is the endpoint's own provisioning state, as Azure reports it: a failed deployment (serving or not) is
    shown on that deployment, never as a failure of an endpoint whose other deployments serve.
    """
    return endpoint.provisioning_state


def endpoint_attributes(*, endpoint: Endpoint, deployments: list[Deployment]) -> dict[str, Any]:
    """What the Details tab's attributes panel shows: Azure's endpoint attributes and the traffic summary."""
    names = {d.name: d for d in deployments}
    traffic = [
        {"deployment": name, "percent": percent, "state": names[name].state if name in names else None}
        for name, percent in sorted((endpoint.traffic or {}).items(), key=lambda pair: (-pair[1], pair[0]))
    ]
    return {
        "state": endpoint_state(endpoint),
        "description": endpoint.description,
        "tags": endpoint.tags or {},
        "auth_mode": endpoint.auth_mode,
        "compute": endpoint.compute or ("local endpoint" if endpoint.local else "managed (this studio's backend)"),
        "created_by": endpoint.created_by.get_username() if endpoint.created_by else None,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
        "updated_by": endpoint.changed_by.get_username() if endpoint.changed_by else None,
        "version": endpoint.version,
        "scoring_uri": endpoint.scoring_uri,
        "swagger_uri": endpoint.openapi_uri,
        "traffic": traffic,
        "live_total": sum(row["percent"] for row in traffic),
        "mirror": sorted((endpoint.mirror_traffic or {}).items()),
    }


def serving_now(*, endpoint: Endpoint, deployments: list[Deployment]) -> list[dict[str, Any]]:
    """What each deployment serves now (live share, mirrored share, state, instances): the strip the Monitoring
    and Costs tabs show above their figures, redrawn whenever traffic or a deployment changes."""
    traffic, mirror = endpoint.traffic or {}, endpoint.mirror_traffic or {}
    return [
        {
            "deployment": d,
            "live": traffic.get(d.name, 0),
            "mirror": mirror.get(d.name, 0),
        }
        for d in sorted(deployments, key=lambda d: (-traffic.get(d.name, 0), -mirror.get(d.name, 0), d.name))
    ]


def endpoint_deployments(*, endpoint: Endpoint) -> list[Deployment]:
    """The endpoint's deployments by name with their instances fetched (what every tab of its page shows)."""
    return list(deployments_list(endpoint=endpoint).prefetch_related("instances"))


def instance_names(*, deployment: Deployment) -> list[str]:
    return list(Instance.objects.filter(deployment=deployment).values_list("name", flat=True))


def traffic_changes(*, endpoint: Endpoint) -> QuerySet[AuditEntry]:
    """Who changed the endpoint's traffic or mirroring, newest first: a view of the audit trail."""
    return audit_traffic_changes(endpoint=endpoint.name, since=endpoint.created_at)


def traffic_change_get(*, endpoint: Endpoint, change_id: int) -> AuditEntry:
    """One recorded traffic change of the endpoint."""
    change = traffic_changes(endpoint=endpoint).filter(pk=change_id).first()
    if change is None:
        raise NotFound(f"traffic change {change_id} does not exist for online endpoint {endpoint.name!r}")
    return change


def deployment_events(*, deployment: Deployment) -> QuerySet[DeploymentEvent]:
    """The deployment's timeline, oldest first."""
    return deployment.events.all()


def endpoint_timeline(*, deployments: list[Deployment], only: str = "", limit: int = 500) -> list[dict[str, Any]]:
    """The timelines of the endpoint's deployments (or of the one named `only`), merged, newest first."""
    events = [(e, d.name) for d in deployments if not only or d.name == only for e in d.events.all()]
    events.sort(key=lambda pair: (pair[0].created_at, pair[0].id), reverse=True)
    return [{"deployment": name, "event": event} for event, name in events[:limit]]


# The local and Kubernetes backends' timeline reasons, grouped into the stages a deployment card shows.
STAGE_REASONS = (
    ("Building environment", ("BuildingEnvironment", "EnvironmentReady")),
    ("Initializing storage", ("StorageInitialized",)),
    ("Starting", ("InstanceStarted", "InstanceReady")),
    ("Ready", ("Ready", "Succeeded")),
)


def deployment_stages(*, deployment: Deployment) -> list[dict[str, Any]]:
    """The deployment's stages of the current rollout, each done or not, with how long it took."""
    events = list(deployment.events.order_by("created_at", "id"))
    # Only the latest rollout matters: start at the last Creating/Updating/Scaling event.
    start = 0
    for index, event in enumerate(events):
        if event.reason in ("Creating", "Updating", "Scaling"):
            start = index
    events = events[start:]
    stages = []
    for label, reasons in STAGE_REASONS:
        matching = [e for e in events if e.reason in reasons]
        done = bool(matching) and (label != "Ready" or deployment.state == ProvisioningState.SUCCEEDED)
        duration = next((e.duration_ms for e in reversed(matching) if e.duration_ms is not None), None)
        seconds = None if duration is None else f"{duration / 1000:.1f} s"
        stages.append({"label": label, "done": done, "duration_ms": duration, "took": seconds})
    if deployment.state == ProvisioningState.SUCCEEDED:
        for stage in stages:  # a cached environment or a scale-only rollout skips stages: they are done
            stage["done"] = True
    return stages


# --- Azure-shaped views (what `show` returns) ---


def model_view(model: Model) -> dict[str, Any]:
    return {
        "name": model.name,
        "version": str(model.version),
        "type": model.type,
        "description": model.description,
        "tags": model.tags,
        "path": model.path_name,
        "id": model.asset_id,
        "creation_context": {"created_at": model.created_at.isoformat()},
    }


def environment_view(environment: Environment) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": environment.name,
        "version": environment.version,
        "description": environment.description,
        "tags": environment.tags,
        "image": environment.image,
        "id": environment.asset_id,
    }
    if environment.conda_file is not None:
        view["conda_file"] = environment.conda_file
    if environment.pip_requirements:
        view["pip_requirements"] = environment.pip_requirements
    if environment.inference_config:
        view["inference_config"] = environment.inference_config
    return view


def endpoint_view(endpoint: Endpoint) -> dict[str, Any]:
    """The endpoint as Azure shows it (the API adds its cost figures from apps.costs)."""
    return {
        "name": endpoint.name,
        "description": endpoint.description,
        "tags": endpoint.tags,
        "auth_mode": endpoint.auth_mode,
        "compute": endpoint.compute or None,
        "traffic": endpoint.traffic,
        "mirror_traffic": endpoint.mirror_traffic,
        "public_network_access": endpoint.public_network_access,
        "local": endpoint.local,
        "location": "local" if endpoint.local else None,  # as `az ml online-endpoint show --local` says it
        "provisioning_state": endpoint_state(endpoint),
        "scoring_uri": endpoint.scoring_uri,
        "openapi_uri": endpoint.openapi_uri,
        "swagger_uri": endpoint.openapi_uri,
        "id": str(endpoint.uid),
        "etag": str(endpoint.version),
        "creation_context": {"created_at": endpoint.created_at.isoformat()},
    }


def deployment_spec_view(deployment: Deployment) -> dict[str, Any]:
    """The deployment's desired spec with Azure's keys: what `update --set` edits."""
    spec: dict[str, Any] = {
        "name": deployment.name,
        "endpoint_name": deployment.endpoint.name,
        "description": deployment.description,
        "tags": deployment.tags,
        "type": deployment.kind,
        "model": deployment.model.asset_id if deployment.model else None,
        "code_configuration": (
            {"code": f"code:{deployment.code_path.removeprefix('code/')}", "scoring_script": deployment.scoring_script}
            if deployment.code_path
            else None
        ),
        "environment": deployment.environment.asset_id,
        "environment_variables": deployment.environment_variables,
        "instance_type": deployment.instance_type,
        "instance_count": deployment.instance_count,
        "scale_settings": deployment.scale_settings,
        "request_settings": deployment.request_settings,
        "liveness_probe": deployment.liveness_probe,
        "readiness_probe": deployment.readiness_probe,
    }
    spec.update(deployment.extra)
    return {key: value for key, value in spec.items() if value is not None}


def secrets_hidden(viewer: Any) -> str | None:
    """Why environment-variable values are hidden from this user (naming the role it needs), or None if shown."""
    if allowed(viewer, SECRETS_ACTION):
        return None
    role = role_of(viewer)
    have = f"you are {role.label}" if role else "you have no role"
    return f"values hidden: {SECRETS_ACTION} needs the {needs(SECRETS_ACTION).label} role ({have})"


def spec_for_viewer(spec: dict[str, Any], *, viewer: Any) -> dict[str, Any]:
    """A deployment spec as this user may see it: variable names kept, values null and `environment_variables_hidden`
    saying why when the user's role may not read secrets (a file with that key is refused if sent back)."""
    variables: dict[str, Any] = spec.get("environment_variables") or {}
    hidden = secrets_hidden(viewer) if variables else None
    if hidden is None:
        return spec
    shown: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "environment_variables":
            shown[key], shown[HIDDEN_KEY] = dict.fromkeys(variables), hidden
        else:
            shown[key] = value
    return shown


ENDPOINT_SPEC_KEYS = ("name", "description", "tags", "auth_mode", "compute", "traffic", "mirror_traffic")


def endpoint_yaml(endpoint: Endpoint) -> str:
    """The endpoint as the Azure ML v2 YAML file that would make it again (what "Download YAML" gives)."""
    view = endpoint_view(endpoint)
    doc = {key: view[key] for key in ENDPOINT_SPEC_KEYS if view.get(key) not in (None, "", {})}
    if endpoint.public_network_access != "enabled":
        doc["public_network_access"] = endpoint.public_network_access
    if endpoint.local:
        doc["local"] = True
    return yaml_text.dump(doc, schema=yaml_text.ENDPOINT_SCHEMA)


def deployment_yaml(deployment: Deployment, *, viewer: Any) -> str:
    """The deployment's desired spec as Azure ML v2 YAML (the spec view, and what "Download YAML" gives).

    References stay the studio's (`azureml:name:version`, `code:<digest>`), so `studio online-deployment
    update -f` takes the file back unchanged; one whose values were hidden from the viewer says so on top.
    """
    doc = spec_for_viewer(deployment_spec_view(deployment), viewer=viewer)
    schema = (
        yaml_text.KUBERNETES_DEPLOYMENT_SCHEMA
        if deployment.kind == Deployment.Kind.KUBERNETES
        else yaml_text.DEPLOYMENT_SCHEMA
    )
    text = yaml_text.dump(doc, schema=schema)
    if HIDDEN_KEY in doc:
        text = f"# environment variable {doc[HIDDEN_KEY]}\n{text}"
    return text


def endpoint_serving_assets(*, endpoint: Endpoint) -> tuple[str | None, str | None]:
    """The model and environment (asset ids) the endpoint serves now: those of the deployment with the most
    live traffic, else of its newest deployment; what "Add deployment" starts from."""
    deployments = [d for d in deployments_list(endpoint=endpoint) if d.state != ProvisioningState.DELETING]
    if not deployments:
        return None, None
    traffic = endpoint.traffic or {}
    best = max(deployments, key=lambda d: (traffic.get(d.name, 0), d.created_at, d.pk))
    return (best.model.asset_id if best.model else None), best.environment.asset_id


def deployment_view(deployment: Deployment, *, viewer: Any) -> dict[str, Any]:
    """The deployment as Azure shows it, to this user (variable values hidden from roles that may not read them)."""
    view = spec_for_viewer(deployment_spec_view(deployment), viewer=viewer)
    view.update(
        {
            "provisioning_state": deployment.state,
            "reason": deployment.reason or None,
            "message": deployment.message or None,
            "ready_instances": deployment.ready_instances,
            "instances": [
                {
                    "name": instance.name,
                    "state": instance.state,
                    "ready": instance.ready,
                    "restarts": instance.restarts,
                    "started_at": instance.started_at.isoformat() if instance.started_at else None,
                }
                for instance in deployment.instances.all()
            ],
            "id": str(deployment.uid),
            "etag": str(deployment.version),
            "creation_context": {"created_at": deployment.created_at.isoformat()},
        }
    )
    return view


def event_view(event: DeploymentEvent) -> dict[str, Any]:
    return {
        "time": event.created_at.isoformat(),
        "type": event.type,
        "reason": event.reason,
        "message": event.message,
        "instance": event.instance or None,
        "container": event.container or None,
        "duration_ms": event.duration_ms,
    }


def routing_rows(*, names: Collection[str] | None = None) -> list[EndpointRow]:
    """The endpoints (all, or those named) with keys, traffic, mirror and ready instances: what the gateway routes by.

    Three queries whatever the number of endpoints, and only the columns routing needs (no descriptions,
    tags or specs), so a gateway holding thousands of routes stays small and a one-endpoint reload is cheap.
    """
    endpoints = Endpoint.objects.exclude(provisioning_state=ProvisioningState.DELETING)
    deployments = Deployment.objects.exclude(state=ProvisioningState.DELETING).exclude(
        endpoint__provisioning_state=ProvisioningState.DELETING
    )
    ready = Instance.objects.filter(ready=True).exclude(address="")
    if names is not None:
        endpoints = endpoints.filter(name__in=list(names))
        deployments = deployments.filter(endpoint__name__in=list(names))
        ready = ready.filter(deployment__endpoint__name__in=list(names))
    instances: dict[int, list[str]] = {}
    secrets: dict[int, dict[str, str]] = {}
    ready_columns = ("deployment_id", "deployment__uid", "name", "address")
    for deployment_id, uid, name, address in ready.order_by("deployment_id", "name").values_list(*ready_columns):
        base = address.rstrip("/")
        instances.setdefault(deployment_id, []).append(base)
        port = urlsplit(base).port
        if port:  # the header the instance insists on (isolation: only the gateway may score)
            secrets.setdefault(deployment_id, {})[base] = instance_secret(
                settings.SECRET_KEY, deployment_uid=str(uid), instance=name, port=port
            )
    by_endpoint: dict[int, list[DeploymentRow]] = {}
    columns = ("pk", "endpoint_id", "name", "request_settings", "environment__inference_config")
    for pk, endpoint_id, name, request_settings, inference_config in deployments.order_by("name").values_list(*columns):
        by_endpoint.setdefault(endpoint_id, []).append(
            DeploymentRow(
                name=name,
                instances=instances.get(pk, []),
                instance_secrets=secrets.get(pk, {}),
                request_settings=dict(request_settings or {}),
                scoring_path=_scoring_path(inference_config),
            )
        )
    rows: list[EndpointRow] = []
    fields = ("pk", "name", "auth_mode", "primary_key", "secondary_key", "token_secret", "traffic", "mirror_traffic")
    for pk, name, auth_mode, primary, secondary, token_secret, traffic, mirror, local in endpoints.values_list(
        *fields, "local"
    ):
        rows.append(
            EndpointRow(
                name=name,
                auth_mode=auth_mode,
                keys=[key for key in (primary, secondary) if key],
                token_secret=token_secret,
                traffic=dict(traffic or {}),
                mirror_traffic=dict(mirror or {}),
                deployments=by_endpoint.get(pk, []),
                local=local,
            )
        )
    return rows


def _scoring_path(inference_config: object) -> str:
    """A custom container's scoring path (`inference_config.scoring_route.path`); the runtime's `/score` otherwise."""
    route = inference_config.get("scoring_route") if isinstance(inference_config, dict) else None
    path = str(route.get("path") or "") if isinstance(route, dict) else ""
    if not path:
        return "/score"
    return path if path.startswith("/") else f"/{path}"

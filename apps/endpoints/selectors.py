"""Reads: look-ups that raise NotFound with a clear message, and the Azure-shaped views of each row."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from apps.core.errors import ApplicationError, NotFound
from apps.costs.models import InstanceType
from apps.endpoints.models import Deployment, DeploymentEvent, Endpoint, Environment, Model, ProvisioningState

# States whose instances hold cores against the quota.
QUOTA_FREE_STATES = (ProvisioningState.DELETING, ProvisioningState.FAILED, ProvisioningState.CANCELED)


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


def instance_type_get(*, name: str) -> InstanceType:
    """A catalog row by name."""
    try:
        return InstanceType.objects.get(name=name)
    except InstanceType.DoesNotExist:
        known = ", ".join(InstanceType.objects.values_list("name", flat=True)[:40])
        raise ApplicationError(
            f"instance_type: unknown size {name!r}; known sizes: {known}", field="instance_type"
        ) from None


def cores_needed(*, instance_count: int, vcpus: int) -> int:
    """Azure's quota rule: ceil(1.2 × instances) × cores, keeping 20 % for upgrades."""
    return math.ceil(1.2 * instance_count) * vcpus


def quota_used(*, exclude: Deployment | None = None) -> int:
    """Cores held by every deployment that runs or is about to."""
    vcpus = dict(InstanceType.objects.values_list("name", "vcpus"))
    used = 0
    rows = Deployment.objects.exclude(state__in=QUOTA_FREE_STATES)
    if exclude is not None:
        rows = rows.exclude(pk=exclude.pk)
    for instance_type, count in rows.values_list("instance_type", "instance_count"):
        used += cores_needed(instance_count=count, vcpus=vcpus.get(instance_type, 0))
    return used


def quota_summary() -> dict[str, int]:
    """Cores of the workspace quota: the limit, held (with the reserve) and free."""
    used = quota_used()
    limit = settings.STUDIO_CORE_QUOTA
    return {"limit": limit, "used": used, "free": max(0, limit - used)}


def endpoints_list() -> QuerySet[Endpoint]:
    return Endpoint.objects.all().order_by("name")


def deployments_list(*, endpoint: Endpoint) -> QuerySet[Deployment]:
    return endpoint.deployments.select_related("endpoint", "model", "environment").order_by("name")


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
    from apps.costs.selectors import endpoint_costs_brief  # costs read this module: imported late

    return {
        "name": endpoint.name,
        "description": endpoint.description,
        "tags": endpoint.tags,
        "auth_mode": endpoint.auth_mode,
        "compute": endpoint.compute or None,
        "traffic": endpoint.traffic,
        "mirror_traffic": endpoint.mirror_traffic,
        "public_network_access": endpoint.public_network_access,
        "provisioning_state": endpoint.provisioning_state,
        "scoring_uri": endpoint.scoring_uri,
        "openapi_uri": endpoint.openapi_uri,
        "swagger_uri": endpoint.openapi_uri,
        "id": str(endpoint.uid),
        "creation_context": {"created_at": endpoint.created_at.isoformat()},
        "costs": endpoint_costs_brief(endpoint=endpoint.name),
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


def deployment_view(deployment: Deployment) -> dict[str, Any]:
    view = deployment_spec_view(deployment)
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

"""Build the frozen spec a backend runs from the deployment's database rows."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from apps.endpoints.backends import backend_kind
from apps.endpoints.backends.base import (
    DeploymentSpec,
    EnvironmentSpec,
    InstanceTypeSpec,
    ProbeSpec,
    RequestSpec,
)
from apps.endpoints.catalog import instance_type_find
from apps.endpoints.models import Deployment, InstanceType

_PROBE_KEYS = ("initial_delay", "period", "timeout", "success_threshold", "failure_threshold")
_REQUEST_KEYS = ("request_timeout_ms", "max_concurrent_requests_per_instance", "max_queue_wait_ms")


def _probe(raw: dict[str, Any] | None) -> ProbeSpec:
    values = {key: int(value) for key, value in (raw or {}).items() if key in _PROBE_KEYS and value is not None}
    return ProbeSpec(**values)


def _request(raw: dict[str, Any] | None) -> RequestSpec:
    values = {key: int(value) for key, value in (raw or {}).items() if key in _REQUEST_KEYS and value is not None}
    return RequestSpec(**values)


def _instance_type(name: str, catalog: Mapping[str, InstanceType] | None) -> InstanceTypeSpec:
    row = catalog.get(name) if catalog is not None else instance_type_find(name=name)
    if row is None:
        # A size removed from the catalog after the deployment was made still runs; it just has no price.
        return InstanceTypeSpec(name=name, vcpus=1, memory_gib=1.0)
    return InstanceTypeSpec(name=row.name, vcpus=row.vcpus, memory_gib=float(row.memory_gib), gpus=row.gpus)


def _folder_size(root: Path) -> int:
    """Bytes below a code snapshot (code is small; a missing folder is 0, the initializer says what is missing)."""
    return _snapshot_size(str(root)) if root.is_dir() else 0


@functools.lru_cache(maxsize=4096)
def _snapshot_size(root: str) -> int:
    # Snapshots are content-addressed and never change: each periodic pass need not walk them again.
    return sum(path.stat().st_size for path in Path(root).rglob("*") if path.is_file())


def deployment_backend_kind(deployment: Deployment) -> str:
    """ "local" or "kubernetes": which backend runs this deployment."""
    return backend_kind(deployment_type=deployment.kind, endpoint_compute=deployment.endpoint.compute)


def deployment_spec(deployment: Deployment, *, catalog: Mapping[str, InstanceType] | None = None) -> DeploymentSpec:
    """The desired spec of `deployment` at its current generation, as the backends take it.

    `catalog`: the instance types by name, when the caller read them already (a pass over many deployments).
    """
    env = deployment.environment
    model = deployment.model
    code_root = deployment.code_root
    return DeploymentSpec(
        uid=str(deployment.uid),
        name=deployment.name,
        endpoint_uid=str(deployment.endpoint.uid),
        endpoint_name=deployment.endpoint.name,
        generation=deployment.generation,
        environment=EnvironmentSpec(
            name=env.name,
            version=str(env.version),
            image=env.image,
            conda_file=env.conda_file,
            pip_requirements=env.pip_requirements,
            spec_hash=env.spec_hash,
            inference_config=env.inference_config,
        ),
        instance_type=_instance_type(deployment.instance_type, catalog),
        instance_count=deployment.instance_count,
        model_asset=model.asset_id if model else None,
        model_root=str(model.root) if model else None,
        model_path_name=model.path_name if model else None,
        model_type=model.type if model else "custom_model",
        model_uid=str(model.uid) if model else None,
        model_size=model.size if model else 0,
        code_root=str(code_root) if code_root else None,
        # Snapshots are content-addressed (storage.code_snapshot): the folder's name is the code's digest.
        code_digest=code_root.name if code_root else None,
        code_size=_folder_size(code_root) if code_root else 0,
        scoring_script=deployment.scoring_script or None,
        environment_variables={str(k): str(v) for k, v in (deployment.environment_variables or {}).items()},
        request=_request(deployment.request_settings),
        liveness_probe=_probe(deployment.liveness_probe),
        readiness_probe=_probe(deployment.readiness_probe),
        scale_settings=dict(deployment.scale_settings or {}),
        resources=deployment.extra.get("resources") if deployment.extra else None,
    )

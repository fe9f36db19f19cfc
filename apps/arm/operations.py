"""Long-running operations: what `Azure-AsyncOperation` points at and what polling it answers.

Nothing is stored: the operation id names its target (an endpoint or deployment and, for a deployment's
create or update, the spec generation it waits for), and its status is read from the rows each time, so it
says exactly what the studio's CLI and pages say about the same deployment.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Literal

from apps.core.errors import ApplicationError, NotFound
from apps.endpoints import selectors
from apps.endpoints.models import ProvisioningState

Kind = Literal["endpoint-put", "endpoint-delete", "deployment-put", "deployment-delete", "done"]


def operation_id(kind: Kind, endpoint: str = "", deployment: str = "", generation: int = 0) -> str:
    """An opaque id naming what the operation waits for."""
    raw = json.dumps([kind, endpoint, deployment, generation], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(op_id: str) -> tuple[str, str, str, int]:
    try:
        kind, endpoint, deployment, generation = json.loads(base64.urlsafe_b64decode(op_id + "=" * (-len(op_id) % 4)))
        return str(kind), str(endpoint), str(deployment), int(generation)
    except (ValueError, TypeError, binascii.Error):
        raise NotFound(f"operation {op_id!r} does not exist") from None


def operation_status(op_id: str) -> dict[str, Any]:
    """`{"status": InProgress | Succeeded | Failed, "error": ...}` for the operation."""
    kind, endpoint_name, deployment_name, generation = _decode(op_id)
    if kind == "done":
        return {"status": "Succeeded"}
    exists = selectors.endpoint_exists(name=endpoint_name)
    if kind == "endpoint-delete":
        return {"status": "InProgress" if exists else "Succeeded"}
    if kind == "endpoint-put":
        if not exists:
            return _failed("NotFound", f"online endpoint {endpoint_name!r} no longer exists")
        return {"status": "Succeeded"}
    deployment = selectors.deployment_find(endpoint=endpoint_name, name=deployment_name)
    if kind == "deployment-delete":
        return {"status": "InProgress" if deployment is not None else "Succeeded"}
    if kind != "deployment-put":
        raise ApplicationError(f"operation {op_id!r}: unknown kind {kind!r}")
    if deployment is None:
        return _failed("NotFound", f"deployment {deployment_name!r} of {endpoint_name!r} no longer exists")
    if deployment.generation > generation:
        return _failed(
            "Canceled", f"deployment {deployment_name!r} was changed again (generation {deployment.generation})"
        )
    if deployment.state == ProvisioningState.FAILED:
        return _failed(deployment.reason or "DeploymentFailed", deployment.message or "the deployment failed")
    done = deployment.state == ProvisioningState.SUCCEEDED and deployment.observed_generation >= generation
    return {"status": "Succeeded" if done else "InProgress"}


def _failed(code: str, message: str) -> dict[str, Any]:
    return {"status": "Failed", "error": {"code": code, "message": message}}

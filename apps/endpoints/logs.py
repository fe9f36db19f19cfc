"""Deployment logs for the API and the CLI: whatever the deployment's backend keeps (files, pod logs)."""

from __future__ import annotations

from apps.endpoints.backends import get_backend
from apps.endpoints.backends.base import Container
from apps.endpoints.models import Deployment
from apps.endpoints.specs import deployment_backend_kind, deployment_spec


def deployment_logs(
    *, deployment: Deployment, container: Container, lines: int, instance: str | None = None, previous: bool = False
) -> str:
    """The last `lines` lines of `container`'s log for the deployment's instances (or one instance)."""
    backend = get_backend(deployment_backend_kind(deployment))
    return backend.logs(
        deployment_spec(deployment), container=container, lines=lines, instance=instance, previous=previous
    )

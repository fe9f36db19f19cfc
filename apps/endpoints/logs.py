"""Deployment logs for the API and the CLI: the local backend's files or the Kubernetes pods' logs."""

from __future__ import annotations

from apps.endpoints import environments
from apps.endpoints.backends import get_backend
from apps.endpoints.backends.base import Container
from apps.endpoints.models import Deployment
from apps.endpoints.specs import deployment_backend_kind, deployment_spec


def deployment_logs(
    *, deployment: Deployment, container: Container, lines: int, instance: str | None = None, previous: bool = False
) -> str:
    """The last `lines` lines of `container`'s log for the deployment's instances (or one instance)."""
    spec = deployment_spec(deployment)
    kind = deployment_backend_kind(deployment)
    text = get_backend(kind).logs(spec, container=container, lines=lines, instance=instance, previous=previous)
    if not text.strip() and kind == "local" and deployment.reason == "ImageBuildFailure":
        # No instance ever started: the environment's build log is what explains the failure.
        build_log = environments.build_log_path(spec.environment)
        if build_log.exists():
            text = "\n".join(build_log.read_text(errors="replace").splitlines()[-lines:])
    return text

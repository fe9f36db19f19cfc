"""Backends run deployments: local processes (the embedded default) or Kubernetes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from apps.endpoints.backends.base import Backend
    from apps.endpoints.backends.local import Reporter


def backend_kind(*, deployment_type: str, endpoint_compute: str) -> str:
    """Kubernetes when the deployment's `type` or its endpoint's `compute` says so, else the studio's default."""
    if deployment_type == "kubernetes" or endpoint_compute:
        return "kubernetes"
    return settings.STUDIO_BACKEND


def get_backend(kind: str | None = None, *, reporter: Reporter | None = None) -> Backend:
    """The backend named `kind` ("local" or "kubernetes"); settings.STUDIO_BACKEND when not given."""
    kind = kind if kind in ("local", "kubernetes") else settings.STUDIO_BACKEND
    if kind == "kubernetes":
        from apps.endpoints.backends.kubernetes import KubernetesBackend

        return KubernetesBackend()
    from apps.endpoints.backends.local import LocalBackend

    return LocalBackend(reporter=reporter)

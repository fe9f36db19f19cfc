"""Backends run deployments: local processes (the embedded default) or Kubernetes."""

from __future__ import annotations

from django.conf import settings

from apps.endpoints.backends.base import Backend, Reporter
from apps.endpoints.backends.local import LocalBackend


def backend_kind(*, deployment_type: str, endpoint_compute: str) -> str:
    """Kubernetes when the deployment's `type` or its endpoint's `compute` says so, else the studio's default."""
    if deployment_type == "kubernetes" or endpoint_compute:
        return "kubernetes"
    return settings.STUDIO_BACKEND


def get_backend(kind: str | None = None, *, reporter: Reporter | None = None) -> Backend:
    """The backend named `kind` ("local" or "kubernetes"), reporting to `reporter`; settings.STUDIO_BACKEND by default.

    A backend reports events it can tell as they happen to `reporter`; the others come back in `Observed.events`.
    """
    kind = kind if kind in ("local", "kubernetes") else settings.STUDIO_BACKEND
    if kind == "kubernetes":
        # Lazy: the Kubernetes client takes a second to import, and a studio on local processes never needs it.
        from apps.endpoints.backends.kubernetes import KubernetesBackend

        return KubernetesBackend()
    return LocalBackend(reporter=reporter)

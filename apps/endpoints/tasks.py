"""Celery tasks: thin wrappers over apps.endpoints.reconcile (ids in, re-fetch, quiet when gone)."""

from __future__ import annotations

from celery import shared_task

from apps.endpoints import reconcile
from apps.endpoints.backends.kubernetes import KubernetesUnavailable

# Only named transient errors are retried, with exponential back-off and jitter (STYLE.md 4).
_RETRY = {
    "autoretry_for": (KubernetesUnavailable, reconcile.DeploymentBusy),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 30,
}


@shared_task(acks_late=True, **_RETRY)
def reconcile_deployment(pk: int) -> str | None:
    """Move deployment `pk` toward its desired spec; returns its state afterwards."""
    return reconcile.reconcile(pk)


@shared_task(acks_late=True, **_RETRY)
def delete_deployment(pk: int) -> None:
    """Stop deployment `pk`'s instances and remove it; retried while another worker holds it."""
    if not reconcile.delete(pk):
        raise reconcile.DeploymentBusy(f"deployment {pk} is busy in another worker; retrying the delete")


@shared_task(acks_late=True, ignore_result=True)
def observe_deployments() -> None:
    """The periodic pass (Celery beat): restarts, probes and readiness of every deployment."""
    for pk in reconcile.pending_deployments():
        reconcile.reconcile(pk, periodic=True)
    for pk in reconcile.deleting_deployments():
        reconcile.delete(pk)

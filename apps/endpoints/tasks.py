"""Celery tasks: thin wrappers over apps.endpoints.reconcile (ids in, re-fetch, quiet when gone).

Kept light to import: services import this module inside their transaction to queue a task, so it
must not pull in the Kubernetes client (a second or more) while the transaction holds its locks.
"""

from __future__ import annotations

import logging
import random
import sys
from typing import Any

from celery import shared_task

from apps.endpoints import reconcile

logger = logging.getLogger(__name__)
MAX_RETRIES = 30
BACKOFF_MAX_S = 60


def transient(error: BaseException) -> bool:
    """Errors worth retrying: the Kubernetes API unavailable, or another worker holding the deployment."""
    if isinstance(error, reconcile.DeploymentBusy):
        return True
    # Only loaded when the Kubernetes backend is in use, and then it raised this error if anything did.
    kubernetes = sys.modules.get("apps.endpoints.backends.kubernetes")
    return kubernetes is not None and isinstance(error, kubernetes.KubernetesUnavailable)


def backoff_s(retries: int) -> float:
    """Exponential back-off with full jitter: 0..2, 0..4, 0..8 ... capped at a minute."""
    return random.uniform(0, min(BACKOFF_MAX_S, 2 ** (retries + 1)))


def _retry(task: Any, error: Exception) -> None:
    if transient(error):
        raise task.retry(exc=error, countdown=backoff_s(task.request.retries), max_retries=MAX_RETRIES)
    raise error


@shared_task(bind=True, acks_late=True)
def reconcile_deployment(self: Any, pk: int) -> str | None:
    """Move deployment `pk` toward its desired spec; returns its state afterwards."""
    try:
        return reconcile.reconcile(pk)
    except Exception as error:  # noqa: BLE001 (re-raised unless transient)
        _retry(self, error)
        raise


@shared_task(bind=True, acks_late=True)
def delete_deployment(self: Any, pk: int) -> None:
    """Stop deployment `pk`'s instances and remove it; retried while another worker holds it."""
    try:
        if not reconcile.delete(pk):
            raise reconcile.DeploymentBusy(f"deployment {pk} is busy in another worker; retrying the delete")
    except Exception as error:  # noqa: BLE001 (re-raised unless transient)
        _retry(self, error)
        raise


@shared_task(acks_late=True, ignore_result=True)
def observe_deployments() -> None:
    """The periodic pass (Celery beat): restarts, probes and readiness of every deployment."""
    for pk in reconcile.pending_deployments():
        try:
            reconcile.reconcile(pk, periodic=True)
        except Exception:  # noqa: BLE001 (one deployment's trouble must not stop the others' supervision)
            logger.exception("the periodic pass over deployment %s failed; the next pass tries again", pk)
    for pk in reconcile.deleting_deployments():
        try:
            reconcile.delete(pk)
        except Exception:  # noqa: BLE001 (as above)
            logger.exception("deleting deployment %s failed; the next pass tries again", pk)

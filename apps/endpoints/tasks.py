"""Celery tasks: thin wrappers over apps.endpoints.reconcile (ids in, re-fetch, quiet when gone).

Services queue them through `apps.endpoints.queue`; the beat task `observe_deployments` fans the
periodic pass out: a task per deployment that needs work, settled deployments observed in chunks.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from apps.core import heartbeat
from apps.core.beat import beat_once
from apps.endpoints import reconcile
from apps.endpoints.backends.base import BackendUnavailable

logger = logging.getLogger(__name__)
MAX_RETRIES = 30
BACKOFF_MAX_S = 60
# A queued periodic task not run within this long is dropped, and the next pass may queue another.
QUEUED_TTL_S = 30
# One deployment's observation never holds a worker longer than this (a cluster that stopped answering).
OBSERVE_TIME_LIMIT_S = 60


def transient(error: BaseException) -> bool:
    """Errors worth retrying: what the backend talks to is unavailable, or another worker holds the deployment."""
    return isinstance(error, reconcile.DeploymentBusy | BackendUnavailable)


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
    finally:
        reconcile.release_queued(pk)


@shared_task(bind=True, acks_late=True)
def delete_deployment(self: Any, pk: int) -> None:
    """Stop deployment `pk`'s instances and remove it; retried while another worker holds it."""
    try:
        if not reconcile.delete(pk):
            raise reconcile.DeploymentBusy(f"deployment {pk} is busy in another worker; retrying the delete")
    except Exception as error:  # noqa: BLE001 (re-raised unless transient)
        _retry(self, error)
        raise
    finally:
        reconcile.release_queued(pk)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=OBSERVE_TIME_LIMIT_S)
def observe_deployment(pk: int) -> str | None:
    """The periodic pass over one deployment: restarts, probes and readiness; the next pass retries any trouble."""
    try:
        return reconcile.observe(pk)
    except SoftTimeLimitExceeded:
        logger.warning("deployment %s not observed this round: out of time", pk)
        return None
    finally:
        reconcile.release_queued(pk)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=OBSERVE_TIME_LIMIT_S)
def observe_deployment_chunk(pks: list[int]) -> int:
    """The periodic pass over a chunk of settled deployments; returns how many were observed."""
    try:
        return sum(1 for state in reconcile.observe_many(pks).values() if state is not None)
    except SoftTimeLimitExceeded:
        logger.warning("deployments %s not all observed this round: out of time", pks)
        return 0
    finally:
        reconcile.release_queued(*pks)


_PERIODIC = {"reconcile": reconcile_deployment, "observe": observe_deployment, "delete": delete_deployment}


@shared_task(acks_late=True, ignore_result=True)
@beat_once(lambda: float(settings.STUDIO_OBSERVE_INTERVAL_S))
def observe_deployments() -> int:
    """Celery beat's periodic pass: a task for each deployment that needs one, settled ones observed in chunks of
    STUDIO_OBSERVE_CHUNK; returns how many deployments were queued."""
    heartbeat.beat("reconciler")
    work = reconcile.periodic_batches(queued_ttl_s=QUEUED_TTL_S, chunk=settings.STUDIO_OBSERVE_CHUNK)
    for kind, pks in work:
        if len(pks) > 1:
            observe_deployment_chunk.apply_async(args=(pks,), expires=QUEUED_TTL_S)
        else:
            _PERIODIC[kind].apply_async(args=(pks[0],), expires=QUEUED_TTL_S)
    return sum(len(pks) for _, pks in work)

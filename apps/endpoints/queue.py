"""Queue the endpoints' Celery tasks once the caller's transaction commits.

Services queue work through this module rather than importing `tasks` themselves: tasks import the
reconcile loop, and the reconcile loop must not import the services (it records through `events`).
"""

from __future__ import annotations

from apps.endpoints import tasks


def reconcile_after_commit(pk: int) -> None:
    """Reconcile deployment `pk` toward its spec once the current transaction commits."""
    tasks.reconcile_deployment.delay_on_commit(pk)


def delete_after_commit(pk: int) -> None:
    """Stop and remove deployment `pk` once the current transaction commits."""
    tasks.delete_deployment.delay_on_commit(pk)

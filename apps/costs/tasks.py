"""Celery tasks of costs and autoscale (thin: the work is in autoscale.py), run by beat."""

from __future__ import annotations

from celery import shared_task

from apps.core.beat import beat_once
from apps.costs import autoscale, services


@shared_task(acks_late=True, ignore_result=True)
@beat_once(60.0)
def autoscale_evaluate() -> int:
    """Close orphaned capacity runs, flag idle deployments, evaluate every autoscale; returns how many scaled."""
    services.capacity_close_orphans()
    services.idle_flag()
    return autoscale.evaluate_all()

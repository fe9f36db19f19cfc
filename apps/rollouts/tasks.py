"""Celery tasks of rollouts (thin: the work is in services.py), run by beat."""

from __future__ import annotations

from celery import shared_task

from apps.rollouts import services


@shared_task(acks_late=True, ignore_result=True)
def rollouts_evaluate() -> int:
    """Judge every running rollout's gates on the metrics store and move it on; returns how many ran."""
    return services.rollouts_evaluate()

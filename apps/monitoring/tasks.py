"""Celery tasks of the metrics store (thin: the work is in services.py), run by beat."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.monitoring import services


@shared_task(acks_late=True, ignore_result=True)
def metrics_ingest() -> dict[str, int]:
    """Drain the gateways' metrics and mirror pairs into the store."""
    result = services.metrics_ingest()
    pairs = services.mirror_pairs_ingest()
    return {"records": result.records, "requests": result.requests, "rows": result.rows, "pairs": pairs}


@shared_task(acks_late=True, ignore_result=True)
def instances_sample() -> int:
    """Sample CPU and memory of every running instance through its deployment's backend."""
    return services.instances_sample()


@shared_task(acks_late=True, ignore_result=True)
def metrics_prune() -> dict[str, Any]:
    """Drop rollups, mirror pairs and samples past their retention."""
    return services.metrics_prune()

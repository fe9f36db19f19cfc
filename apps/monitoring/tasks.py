"""Celery tasks of the metrics store (thin: the work is in services.py), run by beat."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.core.beat import beat_once
from apps.monitoring import announce, services


@shared_task(acks_late=True, ignore_result=True)
@beat_once(5.0)
def metrics_ingest() -> dict[str, int]:
    """Drain the gateways' metrics and mirror pairs into the store, then push the new figures of each
    endpoint that got requests to its open Monitoring tabs."""
    result = services.metrics_ingest()
    pairs = services.mirror_pairs_ingest()
    pushed = announce.charts_changed(endpoints=result.endpoints)
    return {
        "records": result.records,
        "requests": result.requests,
        "rows": result.rows,
        "pairs": pairs,
        "pushed": pushed,
    }


@shared_task(acks_late=True, ignore_result=True)
@beat_once(10.0)
def instances_sample() -> int:
    """Sample CPU and memory of every running instance through its deployment's backend."""
    return services.instances_sample()


@shared_task(acks_late=True, ignore_result=True)
@beat_once(3600.0)
def metrics_prune() -> dict[str, Any]:
    """Drop rollups, mirror pairs and samples past their retention."""
    return services.metrics_prune()

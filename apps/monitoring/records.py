"""The records the gateway pushes and the metrics store ingests: defined once, in `gateway/wire.py`."""

from __future__ import annotations

from gateway.wire import METRICS_QUEUE, MIRROR_BODY_LIMIT, MIRROR_PAIRS_QUEUE, MetricsRecord, MirrorPairRecord

__all__ = ["METRICS_QUEUE", "MIRROR_BODY_LIMIT", "MIRROR_PAIRS_QUEUE", "MetricsRecord", "MirrorPairRecord"]

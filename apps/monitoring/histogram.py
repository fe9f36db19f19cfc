"""Latency histogram buckets shared by the gateway (which counts) and the metrics store (which sums): defined
once, in `gateway/wire.py`.
"""

from __future__ import annotations

from gateway.wire import BOUNDS_MS, bucket_index, bucket_upper_ms, merge, percentile

__all__ = ["BOUNDS_MS", "bucket_index", "bucket_upper_ms", "merge", "percentile"]

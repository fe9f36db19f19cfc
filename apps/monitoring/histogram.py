"""Latency histogram buckets shared by the gateway (which counts) and the metrics store (which sums).

Pure Python, no Django: the gateway imports it. Buckets grow by 5 % from 0.01 ms, so a percentile
read from the histogram is exact to the bucket: within 5 % of the true value.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping

GROWTH = 1.05
FIRST_BOUND_MS = 0.01
LAST_BOUND_MS = 600_000.0
# Upper bounds (inclusive) of each bucket; the last bucket also holds anything slower.
BOUNDS_MS: tuple[float, ...] = tuple(
    FIRST_BOUND_MS * GROWTH**i for i in range(int(math.log(LAST_BOUND_MS / FIRST_BOUND_MS, GROWTH)) + 2)
)


def bucket_index(latency_ms: float) -> int:
    """The bucket a latency falls in."""
    return min(bisect.bisect_left(BOUNDS_MS, latency_ms), len(BOUNDS_MS) - 1)


def bucket_upper_ms(index: int) -> float:
    """The upper bound of a bucket, in milliseconds."""
    return BOUNDS_MS[index]


def merge(into: dict[int, int], other: Mapping[int, int] | Mapping[str, int]) -> dict[int, int]:
    """Add one sparse histogram {bucket: count} into another (JSON keys arrive as strings)."""
    for key, count in other.items():
        index = int(key)
        into[index] = into.get(index, 0) + count
    return into


def percentile(histogram: Mapping[int, int] | Mapping[str, int], q: float) -> float | None:
    """The q-th percentile (0-100) as the upper bound of the bucket that holds it; None when empty."""
    items = sorted((int(k), v) for k, v in histogram.items() if v)
    total = sum(count for _, count in items)
    if total == 0:
        return None
    # The nearest-rank definition: the smallest value with at least q % of samples at or below it.
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for index, count in items:
        seen += count
        if seen >= rank:
            return bucket_upper_ms(index)
    return bucket_upper_ms(items[-1][0])

"""The metrics record the gateway emits and the metrics store ingests. Pure Python, no Django.

Gateways aggregate in memory and push one record per (second, endpoint, deployment, mirrored)
as JSON onto the Redis list METRICS_QUEUE, in batches; a Celery task drains the list into rollups.
"""

from __future__ import annotations

from typing import TypedDict

METRICS_QUEUE = "studio:metrics"


class MetricsRecord(TypedDict):
    ts: int  # the second (Unix time, UTC) the requests finished in
    endpoint: str
    deployment: str
    mirrored: bool  # a shadow copy sent by mirroring, not a live answer
    count: int
    status: dict[str, int]  # {"2xx": n, "4xx": n, "5xx": n, ...} by the status the client saw
    codes: dict[str, int]  # {"200": n, "424": n, ...}
    model_codes: dict[str, int]  # status codes returned by the model container
    latency: dict[str, int]  # sparse histogram {bucket index: count} of total gateway latency (ms)
    upstream_latency: dict[str, int]  # the same for the time spent waiting on the instance
    bytes_in: int
    bytes_out: int

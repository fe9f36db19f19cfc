"""The metrics record the gateway emits and the metrics store ingests. Pure Python, no Django.

Gateways aggregate in memory and push one record per (second, endpoint, deployment, mirrored)
as JSON onto the Redis list METRICS_QUEUE, in batches; a Celery task drains the list into rollups.
"""

from __future__ import annotations

from typing import TypedDict

from apps.core.keys import redis_key

METRICS_QUEUE = redis_key("metrics")


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


# Sampled pairs of answers to the same request: the live deployment's and the mirrored one's.
# The gateway RPUSHes one JSON object per pair onto this list (sample as it likes); the metrics
# store keeps them for the agreement rate of `compare` and its examples of disagreements.
MIRROR_PAIRS_QUEUE = redis_key("mirror-pairs")
MIRROR_BODY_LIMIT = 16 * 1024  # bytes of each body worth keeping; longer bodies are cut and marked truncated


class MirrorPairRecord(TypedDict):
    ts: float  # Unix time (UTC) the mirrored answer arrived
    endpoint: str
    deployment: str  # the deployment that got the mirrored copy
    live_deployment: str  # the deployment whose answer the client got
    request_id: str  # the x-request-id both copies carried
    live_status: int
    shadow_status: int
    live_body: str  # the response body as text (UTF-8, errors replaced), at most MIRROR_BODY_LIMIT bytes
    shadow_body: str
    truncated: bool  # either body was cut at MIRROR_BODY_LIMIT

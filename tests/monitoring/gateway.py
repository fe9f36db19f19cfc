"""What the gateway does with finished requests, for the tests: aggregate per second and push to Redis."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from apps.core.notify import redis_client
from gateway.wire import METRICS_QUEUE, MIRROR_PAIRS_QUEUE, MetricsRecord, MirrorPairRecord, bucket_index


@dataclass(frozen=True)
class Request:
    """One finished request as the gateway saw it."""

    ts: float
    deployment: str
    latency_ms: float
    status: int = 200
    mirrored: bool = False
    endpoint: str = "ep1"


def aggregate(requests: Iterable[Request]) -> list[MetricsRecord]:
    """One record per (second, endpoint, deployment, mirrored), as the gateway pushes them."""
    records: dict[tuple[int, str, str, bool], MetricsRecord] = {}
    for request in requests:
        key = (int(request.ts), request.endpoint, request.deployment, request.mirrored)
        record = records.get(key)
        if record is None:
            record = records[key] = MetricsRecord(
                ts=key[0],
                endpoint=request.endpoint,
                deployment=request.deployment,
                mirrored=request.mirrored,
                count=0,
                status={},
                codes={},
                model_codes={},
                latency={},
                upstream_latency={},
                bytes_in=0,
                bytes_out=0,
            )
        record["count"] += 1
        status_class = f"{request.status // 100}xx"
        record["status"][status_class] = record["status"].get(status_class, 0) + 1
        record["codes"][str(request.status)] = record["codes"].get(str(request.status), 0) + 1
        bucket = str(bucket_index(request.latency_ms))
        record["latency"][bucket] = record["latency"].get(bucket, 0) + 1
        upstream = str(bucket_index(request.latency_ms * 0.9))
        record["upstream_latency"][upstream] = record["upstream_latency"].get(upstream, 0) + 1
        record["bytes_in"] += 100
        record["bytes_out"] += 50
    return list(records.values())


def push(records: Iterable[MetricsRecord]) -> int:
    """RPUSH records onto the metrics list in batches, as gateways do."""
    payload = [json.dumps(record) for record in records]
    for start in range(0, len(payload), 1000):
        redis_client().rpush(METRICS_QUEUE, *payload[start : start + 1000])
    return len(payload)


def push_pairs(pairs: Iterable[MirrorPairRecord]) -> None:
    payload = [json.dumps(pair) for pair in pairs]
    if payload:
        redis_client().rpush(MIRROR_PAIRS_QUEUE, *payload)


def clear() -> None:
    client = redis_client()
    for queue in (METRICS_QUEUE, MIRROR_PAIRS_QUEUE):
        client.delete(queue, queue + ":processing", queue + ":lock")

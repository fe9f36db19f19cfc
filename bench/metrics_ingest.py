"""Metrics ingest at 5000 requests/s offered: counts exact, and how much faster than real time the store keeps up.

Several simulated gateways each count their share of the requests with the gateway's own
MetricsAggregator (the per-request cost is timed), hand over each finished second as MetricsRecord
rows and RPUSH them onto the Redis list, exactly as the gateway does; every 5 simulated seconds the
store drains the list (`metrics_ingest`, what Celery beat runs). At the end the requests offered are
compared with the requests counted in the 10-second, minute and hour rollups: they must be equal.

    python bench/metrics_ingest.py [--rate 5000] [--seconds 60] [--gateways 4] [--deployments 5] [--rounds 3]

Prints, per round and as medians: the aggregator's cost per request (µs, and the share of one core it
takes at the offered rate), the ingest time per second of traffic, and requests offered vs counted.
SQLite in a temporary folder and an embedded Redis unless DATABASE_URL / REDIS_URL are set (rows are
made under the endpoint name `bench-ingest` and deleted at the end).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metrics_common import database_label, setup  # noqa: E402

ENDPOINT = "bench-ingest"


def one_round(args: argparse.Namespace, start_ts: int) -> dict[str, float]:
    from django.db.models import Sum

    from apps.core.notify import redis_client
    from apps.monitoring.models import Grain, MetricRollup
    from apps.monitoring.services import metrics_ingest
    from gateway.metrics import MetricsAggregator
    from gateway.wire import METRICS_QUEUE

    rng = random.Random(start_ts)
    gateways = [MetricsAggregator() for _ in range(args.gateways)]
    deployments = [f"dep{i}" for i in range(args.deployments)]
    weights = [50, 20, 15, 10, 5][: len(deployments)] or [1]
    per_gateway = args.rate // args.gateways
    offered = 0
    record_seconds = 0.0
    ingest_seconds = 0.0
    records_pushed = 0
    client = redis_client()
    # Pre-drawn request shapes: the timing below is the aggregator's, not the random generator's.
    shapes = [
        (
            rng.choices(deployments, weights=weights[: len(deployments)])[0],
            rng.random() < 0.05,
            rng.choice((200,) * 18 + (429, 503)),
            rng.lognormvariate(3, 0.6),
        )
        for _ in range(4096)
    ]
    for second in range(args.seconds):
        now = start_ts + second
        for aggregator in gateways:
            t0 = time.perf_counter()
            for n in range(per_gateway):
                deployment, mirrored, status, latency = shapes[(n + second * 7) & 4095]
                aggregator.record(
                    endpoint=ENDPOINT,
                    deployment=deployment,
                    mirrored=mirrored,
                    status=status,
                    model_status=status if status != 429 else None,
                    total_ms=latency,
                    upstream_ms=latency * 0.9,
                    bytes_in=120,
                    bytes_out=60,
                    now=now + n / per_gateway,
                )
            record_seconds += time.perf_counter() - t0
            offered += per_gateway
            records = aggregator.drain(before=now + 1)
            if records:
                client.rpush(METRICS_QUEUE, *(json.dumps(record) for record in records))
                records_pushed += len(records)
        if second % 5 == 4 or second == args.seconds - 1:
            t0 = time.perf_counter()
            metrics_ingest()
            ingest_seconds += time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics_ingest()
    ingest_seconds += time.perf_counter() - t0
    counted = {}
    for grain in (Grain.TEN_SECONDS, Grain.MINUTE, Grain.HOUR):
        rows = MetricRollup.objects.filter(endpoint=ENDPOINT, grain=grain)
        counted[grain.label] = rows.aggregate(total=Sum("requests"))["total"] or 0
    MetricRollup.objects.filter(endpoint=ENDPOINT).delete()
    return {
        "offered": offered,
        "records": records_pushed,
        "counted_10s": counted["10s"],
        "counted_1m": counted["1m"],
        "counted_1h": counted["1h"],
        "us_per_request": record_seconds / offered * 1e6,
        "core_share": record_seconds / args.seconds,
        "ingest_per_traffic_second_ms": ingest_seconds / args.seconds * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=5000, help="requests per second offered (all gateways)")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--gateways", type=int, default=4)
    parser.add_argument("--deployments", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    setup()
    from apps.core.notify import redis_client
    from gateway.wire import METRICS_QUEUE

    if redis_client().llen(METRICS_QUEUE):
        sys.exit(f"the Redis list {METRICS_QUEUE} is not empty: point REDIS_URL at a Redis no gateway writes to")
    print(f"database: {database_label()}")
    print(
        f"offered: {args.rate} requests/s for {args.seconds} s from {args.gateways} gateways "
        f"over {args.deployments} deployments"
    )
    print(f"{'round':<7}{'offered':>9}{'records':>9}{'10s':>9}{'1m':>9}{'1h':>9}", end="")
    print(f"{'µs/req':>8}{'core':>7}{'ingest ms/s':>13}")
    results = []
    for index in range(args.rounds):
        result = one_round(args, start_ts=1_790_000_000 + index * 100_000)
        results.append(result)
        exact = result["offered"] == result["counted_10s"] == result["counted_1m"] == result["counted_1h"]
        print(
            f"{index + 1:<7}{result['offered']:>9}{result['records']:>9}{result['counted_10s']:>9}"
            f"{result['counted_1m']:>9}{result['counted_1h']:>9}{result['us_per_request']:>8.2f}"
            f"{result['core_share'] * 100:>6.1f}%{result['ingest_per_traffic_second_ms']:>13.1f}"
            f"  {'exact' if exact else 'MISMATCH'}"
        )
    us = statistics.median(r["us_per_request"] for r in results)
    share = statistics.median(r["core_share"] for r in results)
    ingest = statistics.median(r["ingest_per_traffic_second_ms"] for r in results)
    all_exact = all(r["offered"] == r["counted_10s"] == r["counted_1m"] == r["counted_1h"] for r in results)
    print(
        f"median: {us:.2f} µs of aggregation per request ({share * 100:.1f} % of one core at {args.rate}/s); "
        f"ingest {ingest:.1f} ms per second of traffic ({1000 / ingest if ingest else float('inf'):.0f}× real time); "
        f"counts {'exact in every round' if all_exact else 'NOT exact'}"
    )


if __name__ == "__main__":
    main()

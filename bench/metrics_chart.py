"""Server time of the 30-day chart of an endpoint with 5 deployments (target: under 300 ms).

Seeds 30 days × 1440 minutes × 5 deployments = 216 000 minute rollups (each with a latency histogram
and its percentiles) and the hour rollups the ingest keeps beside them (histograms merged, so their
percentiles are exact), then times, over several rounds, what the studio does to answer the chart:
pick the grain (`chart_grain`: hours for 30 days), read the rollups (`rollup_columns`) and build the
Plotly figures (latency p50..p99, requests per minute, errors). With --minutes it also times drawing
every minute point (216 000 per line set), for comparison. Medians and slowest rounds, side by side.

    python bench/metrics_chart.py [--days 30] [--deployments 5] [--rounds 7] [--minutes]

SQLite in a temporary folder by default; with DATABASE_URL set it runs against that database (its
rows are made under the endpoint name `bench-chart` and deleted at the end).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metrics_common import database_label, setup  # noqa: E402

ENDPOINT = "bench-chart"


def seed(days: int, deployments: int) -> tuple[int, int]:
    from apps.monitoring import histogram
    from apps.monitoring.models import Grain, MetricRollup

    rng = random.Random(1)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    made = [0, 0]

    def row(grain: int, ts: datetime, name: str, hist: dict[int, int], errors: int) -> MetricRollup:
        requests = sum(hist.values())
        p50, p90, p95, p99 = (histogram.percentile(hist, q) for q in (50, 90, 95, 99))
        buckets = {str(k): v for k, v in sorted(hist.items())}
        return MetricRollup(
            grain=grain,
            ts=ts,
            endpoint=ENDPOINT,
            deployment=name,
            requests=requests,
            status_2xx=requests - errors,
            status_5xx=errors,
            codes={"200": requests - errors, "503": errors},
            latency=buckets,
            upstream_latency=buckets,
            p50=p50,
            p90=p90,
            p95=p95,
            p99=p99,
        )

    for deployment in range(deployments):
        name = f"dep{deployment}"
        rows: list[MetricRollup] = []
        for hour in range(days * 24):
            hour_hist: dict[int, int] = {}
            hour_errors = 0
            for minute in range(60):
                hist = {histogram.bucket_index(rng.lognormvariate(3, 0.5)): rng.randint(1, 40) for _ in range(12)}
                errors = rng.randint(0, 3)
                ts = start + timedelta(hours=hour, minutes=minute)
                rows.append(row(Grain.MINUTE, ts, name, hist, errors))
                histogram.merge(hour_hist, hist)
                hour_errors += errors
            rows.append(row(Grain.HOUR, start + timedelta(hours=hour), name, hour_hist, hour_errors))
            made[0] += 60
            made[1] += 1
            if len(rows) >= 5000:
                MetricRollup.objects.bulk_create(rows)
                rows = []
        MetricRollup.objects.bulk_create(rows)
    return made[0], made[1]


def timed(columns_of: Any, grain: int, rounds: int) -> tuple[list[float], list[float], int, int]:
    from apps.monitoring import charts

    read, build, points, size = [], [], 0, 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        columns = columns_of()
        t1 = time.perf_counter()
        figures = {
            "latency": charts.latency_figure(columns),
            "requests": charts.requests_figure(columns, grain=grain),
            "errors": charts.errors_figure(columns, grain=grain),
        }
        t2 = time.perf_counter()
        read.append(t1 - t0)
        build.append(t2 - t1)
        points = sum(len(column["x"]) for column in columns.values())
        size = len(json.dumps(figures))
    return read, build, points, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--deployments", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--minutes", action="store_true", help="also time drawing every minute point")
    args = parser.parse_args()
    setup()
    from apps.monitoring.models import Grain, MetricRollup
    from apps.monitoring.selectors import chart_grain, rollup_columns

    MetricRollup.objects.filter(endpoint=ENDPOINT).delete()
    began = time.perf_counter()
    minutes, hours = seed(args.days, args.deployments)
    print(f"database: {database_label()}")
    print(
        f"seeded {minutes} minute and {hours} hour rollups ({args.days} days × {args.deployments} deployments) "
        f"in {time.perf_counter() - began:.0f} s"
    )
    start = datetime(2026, 10, 1, tzinfo=UTC)
    end = start + timedelta(days=args.days)
    results = []
    try:
        grain = chart_grain(start=start, end=end, now=end)
        label = {3600: "hours", 60: "minutes", 10: "10 s"}[grain]
        results.append(
            (
                f"{args.days}-day chart ({label})",
                timed(lambda: rollup_columns(endpoint=ENDPOINT, start=start, end=end, grain=grain), grain, args.rounds),
            )
        )
        if args.minutes:
            minute = int(Grain.MINUTE)
            results.append(
                (
                    f"{args.days}-day, every minute",
                    timed(
                        lambda: rollup_columns(endpoint=ENDPOINT, start=start, end=end, grain=minute),
                        minute,
                        max(1, args.rounds // 3),
                    ),
                )
            )
    finally:
        MetricRollup.objects.filter(endpoint=ENDPOINT).delete()
    print(f"{'chart':<28}{'points':>9}{'JSON MB':>9}{'read ms':>10}{'figures ms':>12}{'total ms':>10}{'max ms':>9}")
    for name, (read, build, points, size) in results:
        total = [a + b for a, b in zip(read, build, strict=True)]
        print(
            f"{name:<28}{points:>9}{size / 1e6:>9.2f}{statistics.median(read) * 1000:>10.1f}"
            f"{statistics.median(build) * 1000:>12.1f}{statistics.median(total) * 1000:>10.1f}{max(total) * 1000:>9.1f}"
        )
    first = [a + b for a, b in zip(results[0][1][0], results[0][1][1], strict=True)]
    verdict = "under" if statistics.median(first) < 0.3 else "OVER"
    print(f"target: server time under 300 ms; median {statistics.median(first) * 1000:.0f} ms, {verdict}")


if __name__ == "__main__":
    main()

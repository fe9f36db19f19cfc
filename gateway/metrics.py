"""Per-second metrics aggregated in memory: MetricsRecord batches for Redis, and Prometheus counters.

One request costs a few integer-keyed dictionary updates on its second's accumulator; everything else
(status classes, string keys, the cumulative Prometheus figures) is worked out once per second when
`drain()` turns the finished seconds into MetricsRecord rows (one per second, endpoint, deployment and
mirrored) that the proxy pushes to Redis in one RPUSH. /metrics adds the seconds not drained yet, so it is
always current. Nothing here does I/O.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict

from gateway.wire import MetricsRecord, bucket_index

# Prometheus histogram bounds (seconds) for the gateway's total latency.
PROM_BOUNDS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROM_BOUNDS_MS = tuple(bound * 1000 for bound in PROM_BOUNDS_S)

Key = tuple[int, str, str, bool]
FLUSH_PAST_S = 0.005  # how long after a second ends its records are pushed (a request ending on the edge is in)


def next_flush_in(now: float, every_s: float = 1.0) -> float:
    """Seconds to wait before the next push: just past the next multiple of `every_s` (the end of the current
    second by default), so a finished second goes out at once instead of waiting up to a whole further interval
    (a free-running timer's phase is arbitrary: a record waited 1 s on average, 2 s at worst, not 0.5 and 1)."""
    return every_s - (now % every_s) + FLUSH_PAST_S


class _Second:
    """The running sums of one (second, endpoint, deployment, mirrored); dictionaries keyed by int."""

    __slots__ = ("count", "codes", "model_codes", "latency", "upstream", "prom", "sum_ms", "bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.count = 0
        self.codes: dict[int, int] = {}
        self.model_codes: dict[int, int] = {}
        self.latency: dict[int, int] = {}
        self.upstream: dict[int, int] = {}
        self.prom = [0] * (len(PROM_BOUNDS_MS) + 1)
        self.sum_ms = 0.0
        self.bytes_in = 0
        self.bytes_out = 0


class _Totals:
    """Cumulative figures since the process started, for /metrics."""

    __slots__ = ("buckets", "sum_s", "count")

    def __init__(self) -> None:
        self.buckets = [0] * (len(PROM_BOUNDS_S) + 1)
        self.sum_s = 0.0
        self.count = 0


class MetricsAggregator:
    """Counts requests per second in memory; `drain()` hands the finished seconds over as records."""

    def __init__(self) -> None:
        self._seconds: dict[Key, _Second] = {}
        self._requests_total: dict[tuple[str, str, str, bool], int] = defaultdict(int)
        self._latency_totals: dict[tuple[str, str, bool], _Totals] = defaultdict(_Totals)
        self.mirror_dropped: dict[tuple[str, str], int] = defaultdict(int)
        self.records_dropped = 0  # records Redis did not take

    def record(
        self,
        *,
        endpoint: str,
        deployment: str,
        mirrored: bool,
        status: int,
        model_status: int | None,
        total_ms: float,
        upstream_ms: float | None,
        bytes_in: int,
        bytes_out: int,
        now: float | None = None,
    ) -> None:
        """Add one finished request (or shadow copy)."""
        key = (int(now if now is not None else time.time()), endpoint, deployment, mirrored)
        acc = self._seconds.get(key)
        if acc is None:
            acc = self._seconds[key] = _Second()
        acc.count += 1
        codes = acc.codes
        codes[status] = codes.get(status, 0) + 1
        if model_status is not None:
            model_codes = acc.model_codes
            model_codes[model_status] = model_codes.get(model_status, 0) + 1
        latency = acc.latency
        index = bucket_index(total_ms)
        latency[index] = latency.get(index, 0) + 1
        if upstream_ms is not None:
            upstream = acc.upstream
            index = bucket_index(upstream_ms)
            upstream[index] = upstream.get(index, 0) + 1
        acc.prom[bisect.bisect_left(PROM_BOUNDS_MS, total_ms)] += 1
        acc.sum_ms += total_ms
        acc.bytes_in += bytes_in
        acc.bytes_out += bytes_out

    def drop_mirror(self, *, endpoint: str, deployment: str) -> None:
        """Count a shadow copy not sent because too many were already in flight."""
        self.mirror_dropped[(endpoint, deployment)] += 1

    def drain(self, *, before: float | None = None) -> list[MetricsRecord]:
        """Remove and return the records of every second earlier than `before` (all of them when None)."""
        cutoff = int(before) if before is not None else None
        done = [key for key in self._seconds if cutoff is None or key[0] < cutoff]
        records: list[MetricsRecord] = []
        for key in sorted(done):
            acc = self._seconds.pop(key)
            _fold(key, acc, self._requests_total, self._latency_totals)
            second, endpoint, deployment, mirrored = key
            status: dict[str, int] = defaultdict(int)
            for code, count in acc.codes.items():
                status[f"{code // 100}xx"] += count
            records.append(
                MetricsRecord(
                    ts=second,
                    endpoint=endpoint,
                    deployment=deployment,
                    mirrored=mirrored,
                    count=acc.count,
                    status=dict(status),
                    codes={str(code): count for code, count in acc.codes.items()},
                    model_codes={str(code): count for code, count in acc.model_codes.items()},
                    latency={str(k): v for k, v in acc.latency.items()},
                    upstream_latency={str(k): v for k, v in acc.upstream.items()},
                    bytes_in=acc.bytes_in,
                    bytes_out=acc.bytes_out,
                )
            )
        return records

    @property
    def requests_total(self) -> dict[tuple[str, str, str, bool], int]:
        """Requests counted so far by (endpoint, deployment, status code, mirrored), drained or not."""
        return self.totals()[0]

    def totals(self) -> tuple[dict[tuple[str, str, str, bool], int], dict[tuple[str, str, bool], _Totals]]:
        """Requests by (endpoint, deployment, code, mirrored) and latency histograms by (endpoint, deployment,
        mirrored), cumulative since the process started, including the seconds not drained yet."""
        requests: dict[tuple[str, str, str, bool], int] = defaultdict(int, self._requests_total)
        latency: dict[tuple[str, str, bool], _Totals] = defaultdict(_Totals)
        for name, totals in self._latency_totals.items():
            copy = latency[name]
            copy.buckets, copy.sum_s, copy.count = list(totals.buckets), totals.sum_s, totals.count
        for key, acc in list(self._seconds.items()):
            _fold(key, acc, requests, latency)
        return requests, latency


def _fold(
    key: Key,
    acc: _Second,
    requests: dict[tuple[str, str, str, bool], int],
    latency: dict[tuple[str, str, bool], _Totals],
) -> None:
    """Add one second's sums to cumulative Prometheus figures."""
    _, endpoint, deployment, mirrored = key
    for code, count in acc.codes.items():
        requests[(endpoint, deployment, str(code), mirrored)] += count
    totals = latency[(endpoint, deployment, mirrored)]
    for index, count in enumerate(acc.prom):
        totals.buckets[index] += count
    totals.sum_s += acc.sum_ms / 1000
    totals.count += acc.count


def _labels(**labels: object) -> str:
    def escape(value: object) -> str:
        return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{name}="{escape(value)}"' for name, value in labels.items()) + "}"


def render_prometheus(metrics: MetricsAggregator, in_flight: dict[tuple[str, str], int], reloads: int) -> str:
    """The Prometheus text exposition of the cumulative counters and the current gauges."""
    lines = [
        "# HELP studio_gateway_requests_total Requests answered by the gateway (mirrored: shadow copies).",
        "# TYPE studio_gateway_requests_total counter",
    ]
    requests_total, latency_totals = metrics.totals()
    for (endpoint, deployment, code, mirrored), value in sorted(requests_total.items()):
        labels = _labels(endpoint=endpoint, deployment=deployment, code=code, mirrored=str(mirrored).lower())
        lines.append(f"studio_gateway_requests_total{labels} {value}")
    lines += [
        "# HELP studio_gateway_request_duration_seconds Time from the request's arrival to the end of its answer.",
        "# TYPE studio_gateway_request_duration_seconds histogram",
    ]
    for (endpoint, deployment, mirrored), totals in sorted(latency_totals.items()):
        base = {"endpoint": endpoint, "deployment": deployment, "mirrored": str(mirrored).lower()}
        running = 0
        for bound, count in zip((*PROM_BOUNDS_S, "+Inf"), totals.buckets, strict=True):
            running += count
            lines.append(f"studio_gateway_request_duration_seconds_bucket{_labels(**base, le=bound)} {running}")
        lines.append(f"studio_gateway_request_duration_seconds_sum{_labels(**base)} {totals.sum_s:.6f}")
        lines.append(f"studio_gateway_request_duration_seconds_count{_labels(**base)} {totals.count}")
    lines += [
        "# HELP studio_gateway_in_flight Live requests being answered now.",
        "# TYPE studio_gateway_in_flight gauge",
    ]
    for (endpoint, deployment), value in sorted(in_flight.items()):
        lines.append(f"studio_gateway_in_flight{_labels(endpoint=endpoint, deployment=deployment)} {value}")
    lines += [
        "# HELP studio_gateway_mirror_dropped_total Shadow copies dropped because too many were in flight.",
        "# TYPE studio_gateway_mirror_dropped_total counter",
    ]
    for (endpoint, deployment), value in sorted(metrics.mirror_dropped.items()):
        lines.append(f"studio_gateway_mirror_dropped_total{_labels(endpoint=endpoint, deployment=deployment)} {value}")
    lines += [
        "# HELP studio_gateway_metrics_records_dropped_total Per-second records Redis did not accept.",
        "# TYPE studio_gateway_metrics_records_dropped_total counter",
        f"studio_gateway_metrics_records_dropped_total {metrics.records_dropped}",
        "# HELP studio_gateway_routing_reloads_total Routing table loads from the database.",
        "# TYPE studio_gateway_routing_reloads_total counter",
        f"studio_gateway_routing_reloads_total {reloads}",
    ]
    return "\n".join(lines) + "\n"

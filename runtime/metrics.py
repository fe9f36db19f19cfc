"""GET /metrics: Prometheus counters of this worker (requests by status, latency histogram, in flight)."""

from __future__ import annotations

import bisect
import os

# seconds; fine at the low end because a small model answers in about a millisecond
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """In-process counters; each worker keeps its own, labelled with its pid."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.requests: dict[tuple[str, str, int], int] = {}
        # route -> per-bucket counts (last slot is +Inf), sum, count
        self.latency: dict[str, list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        key = (method, route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        row = self.latency.get(route)
        if row is None:
            row = self.latency[route] = [0.0] * (len(BUCKETS) + 3)
        row[bisect.bisect_left(BUCKETS, seconds)] += 1
        row[-2] += seconds
        row[-1] += 1

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        pid = os.getpid()
        lines = [
            "# HELP infsrv_requests_total Requests answered, by method, route and status code.",
            "# TYPE infsrv_requests_total counter",
        ]
        for (method, route, status), count in sorted(self.requests.items()):
            lines.append(
                f'infsrv_requests_total{{method="{method}",route="{route}",status="{status}",pid="{pid}"}} {count}'
            )
        lines += [
            "# HELP infsrv_request_duration_seconds Time from the parsed request to the answer.",
            "# TYPE infsrv_request_duration_seconds histogram",
        ]
        for route, row in sorted(self.latency.items()):
            cumulative = 0
            for bound, in_bucket in zip((*BUCKETS, "+Inf"), row[: len(BUCKETS) + 1], strict=True):
                cumulative += int(in_bucket)
                lines.append(
                    f'infsrv_request_duration_seconds_bucket{{route="{route}",le="{bound}",pid="{pid}"}} '
                    f"{int(cumulative)}"
                )
            lines.append(f'infsrv_request_duration_seconds_sum{{route="{route}",pid="{pid}"}} {row[-2]:.6f}')
            lines.append(f'infsrv_request_duration_seconds_count{{route="{route}",pid="{pid}"}} {int(row[-1])}')
        lines += [
            "# HELP infsrv_requests_in_flight Requests being handled now.",
            "# TYPE infsrv_requests_in_flight gauge",
            f'infsrv_requests_in_flight{{pid="{pid}"}} {self.in_flight}',
            "",
        ]
        return "\n".join(lines).encode()

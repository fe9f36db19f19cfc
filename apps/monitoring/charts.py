"""Plotly figures as plain dicts (JSON-ready) for the studio's pages: no I/O in the figure builders.

`endpoint_figures` and `monitoring_figures` are the entries that read the store (through selectors):
the second is what the endpoint's Monitoring tab draws, and what the metrics task pushes to it after
each ingest. The builders above them are pure and take the selectors' columns.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from apps.monitoring.selectors import chart_grain, rollup_columns, usage_columns

PERCENTILES = ("p50", "p90", "p95", "p99")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
# Deployment colours stay the same on every chart of a page.
PALETTE = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#d62728", "#8c564b", "#e377c2", "#17becf")
# Side by side, the first group (a rollout's target) stands out from the second (its baseline).
COMPARISON_COLOURS = ("#ff7f0e", "#1f77b4")
# Gateways count requests refused before a deployment was chosen (401, 404) under the name "".
UNROUTED = "(not routed)"


def _name(deployment: str) -> str:
    return deployment or UNROUTED


def _layout(title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    """A chart's layout. The legend sits above the plot and the time axis has no title (the page says times
    are UTC), so at no width can a legend row meet an axis title; the page shows the title as the card's
    heading."""
    layout = {
        "title": {"text": title},
        "xaxis": {"type": "date", "automargin": True},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero", "automargin": True},
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"},
        "margin": {"l": 50, "r": 16, "t": 16, "b": 36},
        "showlegend": True,
        "uirevision": "keep",
    }
    layout.update(extra)
    return layout


def _minute(ts: str) -> str:
    return datetime.fromisoformat(ts).replace(second=0, microsecond=0).isoformat()


def per_minute(
    x: list[str], counts: list[Any], *, grain: int, end: datetime | None = None
) -> tuple[list[str], list[float]]:
    """Counts per bucket as a per-minute rate that is true whatever the bucket size: buckets shorter than a
    minute are summed into whole minutes (one error in a 10 s bucket is one a minute, not six), longer ones
    are averaged over their minutes. A last minute (or bucket) still in progress at `end` is averaged over
    the part of it that has passed, so a steady load does not seem to fall at the right edge."""
    if grain >= 60:
        points, rates, span = list(x), [float(count or 0) * 60 / grain for count in counts], grain
    else:
        minutes: dict[str, float] = {}
        for ts, count in zip(x, counts, strict=True):
            key = _minute(ts)
            minutes[key] = minutes.get(key, 0.0) + float(count or 0)
        points, rates, span = list(minutes), list(minutes.values()), 60
    if end is not None and points:
        passed = (end - datetime.fromisoformat(points[-1])).total_seconds()
        if 0 < passed < span:
            rates[-1] *= span / max(passed, min(grain, 10))
    return points, rates


def _line(deployment: str, index: int, x: list[Any], y: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "scattergl",
        "mode": "lines",
        "name": _name(deployment),
        "x": x,
        "y": y,
        "line": {"color": PALETTE[index % len(PALETTE)], "width": 1.5},
        "connectgaps": False,
        **extra,
    }


def latency_figure(columns: dict[str, dict[str, list[Any]]], *, percentile: str = "p95") -> dict:
    """Request latency at one percentile (RequestLatency_P50..P99), one line per deployment."""
    if percentile not in PERCENTILES:
        percentile = "p95"
    data = [
        _line(deployment, index, column["x"], column[percentile])
        for index, (deployment, column) in enumerate(sorted(columns.items()))
    ]
    return {"data": data, "layout": _layout(f"Request latency ({percentile})", "ms")}


def requests_figure(columns: dict[str, dict[str, list[Any]]], *, grain: int, end: datetime | None = None) -> dict:
    """RequestsPerMinute, one line per deployment."""
    data = []
    for index, (deployment, column) in enumerate(sorted(columns.items())):
        x, y = per_minute(column["x"], column["requests"], grain=grain, end=end)
        data.append(_line(deployment, index, x, y))
    return {"data": data, "layout": _layout("Requests per minute", "requests / min")}


def errors_figure(columns: dict[str, dict[str, list[Any]]], *, grain: int, end: datetime | None = None) -> dict:
    """4xx and 5xx answers per minute, one line per deployment."""
    data = []
    for index, (deployment, column) in enumerate(sorted(columns.items())):
        errors = [(a or 0) + (b or 0) for a, b in zip(column["4xx"], column["5xx"], strict=True)]
        x, y = per_minute(column["x"], errors, grain=grain, end=end)
        data.append(_line(deployment, index, x, y))
    return {"data": data, "layout": _layout("Errors per minute (4xx and 5xx)", "errors / min")}


def usage_figure(columns: dict[str, dict[str, list[Any]]], *, metric: str, title: str, y_title: str) -> dict:
    """One instance metric (CPU, memory or disk), the mean over a deployment's instances, one line each."""
    data = [
        _line(deployment, index, column["x"], column[metric])
        for index, (deployment, column) in enumerate(sorted(columns.items()))
        if any(value is not None for value in column[metric])
    ]
    return {"data": data, "layout": _layout(title, y_title)}


def comparison_figures(
    columns: dict[str, dict[str, list[Any]]],
    *,
    grain: int,
    start: datetime,
    end: datetime,
    max_error_rate: float | None = None,
    now: datetime | None = None,
) -> dict[str, dict]:
    """Groups of deployments side by side over [start, end) (`group_columns`, in the order given): requests per
    minute, error rate and p99 latency, one line per group; the error-rate threshold as a dashed line when given."""
    requests, rates, latency = [], [], []
    for index, (label, column) in enumerate(columns.items()):
        colour = {"color": COMPARISON_COLOURS[index % len(COMPARISON_COLOURS)], "width": 2}
        x, per_min = per_minute(column["x"], column["requests"], grain=grain, end=min(end, now or timezone.now()))
        requests.append(_line(label, index, x, per_min, line=colour))
        rate = [
            round(100 * errors / total, 2) if total else None
            for errors, total in zip(column["errors"], column["requests"], strict=True)
        ]
        rates.append(_line(label, index, column["x"], rate, line=colour))
        latency.append(_line(label, index, column["x"], column["p99"], line=colour))
    if max_error_rate is not None:
        span = [start.isoformat(), end.isoformat()]
        threshold = {"color": "#6e7781", "width": 1, "dash": "dash"}
        rates.append(_line("threshold", 0, span, [max_error_rate] * 2, line=threshold))
    figures = {
        "requests": {"data": requests, "layout": _layout("Requests per minute", "requests / min")},
        "error_rate": {"data": rates, "layout": _layout("Error rate (5xx and 424)", "% of answers")},
        "latency": {"data": latency, "layout": _layout("Request latency (p99)", "ms")},
    }
    return _spanning(figures, start, end)


def cost_figure(per_deployment_per_day: dict[str, list[tuple[str, Decimal]]], *, currency: str) -> dict:
    """Cost per day, stacked by deployment."""
    data = [
        {
            "type": "bar",
            "name": deployment,
            "x": [day for day, _ in days],
            "y": [float(cost) for _, cost in days],
            "marker": {"color": PALETTE[index % len(PALETTE)]},
        }
        for index, (deployment, days) in enumerate(sorted(per_deployment_per_day.items()))
    ]
    layout = _layout("Cost per day", currency, barmode="stack")
    layout["xaxis"] = {"type": "category", "automargin": True}
    return {"data": data, "layout": layout}


def endpoint_figures(
    *,
    endpoint: str,
    minutes: int = 60,
    now: datetime | None = None,
    mirrored: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
    percentile: str = "p95",
) -> dict[str, dict]:
    """Latency, requests and errors per deployment over [start, end) (default: the last `minutes`), live or
    mirrored requests."""
    now = now or timezone.now()
    end = end or now
    start = start or end - timedelta(minutes=minutes)
    grain = chart_grain(start=start, end=end, now=now)
    columns = rollup_columns(endpoint=endpoint, start=start, end=end, grain=grain, mirrored=mirrored)
    return _spanning(
        {
            "latency": latency_figure(columns, percentile=percentile),
            "requests": requests_figure(columns, grain=grain, end=min(end, now)),
            "errors": errors_figure(columns, grain=grain, end=min(end, now)),
        },
        start,
        end,
    )


def _spanning(figures: dict[str, dict], start: datetime, end: datetime) -> dict[str, dict]:
    """The time axis spans the range asked for, so a few points sit where they happened in it."""
    for figure in figures.values():
        figure["layout"]["xaxis"]["range"] = [start.isoformat(), end.isoformat()]
    return figures


def usage_figures(*, endpoint: str, start: datetime, end: datetime, now: datetime | None = None) -> dict[str, dict]:
    """CPU, memory and disk per deployment over [start, end), from the backend's instance samples."""
    grain = max(chart_grain(start=start, end=end, now=now), 60)
    columns = usage_columns(endpoint=endpoint, start=start, end=end, grain=grain)
    figures = {
        "cpu": usage_figure(columns, metric="cpu_percent", title="CPU", y_title="% of vCPUs"),
        "memory": usage_figure(columns, metric="memory_percent", title="Memory", y_title="% of memory"),
        "disk": usage_figure(columns, metric="disk_mib", title="Disk used", y_title="MiB"),
    }
    return _spanning({key: figure for key, figure in figures.items() if _has_points(figure)}, start, end)


def _has_points(figure: dict[str, Any]) -> bool:
    return any(trace.get("x") for trace in figure.get("data", []))


def monitoring_figures(
    *,
    endpoint: str,
    now: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    percentile: str = "p95",
) -> dict[str, dict] | None:
    """The Monitoring tab's figures over [start, end) (default: the last hour): live latency, requests and
    errors, CPU, memory and disk, and the mirrored copies' drawn apart; None while nothing was recorded."""
    now = now or timezone.now()
    end = end or now
    start = start or end - timedelta(hours=1)
    live = endpoint_figures(endpoint=endpoint, now=now, start=start, end=end, percentile=percentile)
    mirrored = endpoint_figures(endpoint=endpoint, now=now, start=start, end=end, percentile=percentile, mirrored=True)
    figures: dict[str, dict] = {}
    if any(_has_points(figure) for figure in live.values()):
        figures.update(live)
    figures.update(usage_figures(endpoint=endpoint, start=start, end=end, now=now))
    for key, figure in mirrored.items():
        if key != "errors" and _has_points(figure):
            title = figure.get("layout", {}).get("title", {})
            if isinstance(title, dict) and "text" in title:
                figure["layout"]["title"] = {**title, "text": f"{title['text']} (mirrored copies)"}
            figures[f"mirrored_{key}"] = figure
    return figures or None


def instance_count_figure(points: list[tuple[datetime, int]]) -> dict:
    """A deployment's instance count over time, as a step line."""
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "line": {"shape": "hv", "color": PALETTE[0]},
            "name": "instances",
            "x": [moment.isoformat() for moment, _ in points],
            "y": [count for _, count in points],
        }
    ]
    layout = _layout("Instances over time", "instances")
    layout["showlegend"] = False
    return {"data": data, "layout": layout}


def overview_figures(*, endpoint: str, start: datetime, end: datetime, now: datetime | None = None) -> dict[str, dict]:
    """The global Monitoring page's two small charts of one endpoint: requests per minute and p95 latency."""
    figures = endpoint_figures(endpoint=endpoint, start=start, end=end, now=now)
    return {key: figures[key] for key in ("requests", "latency") if _has_points(figures[key])}

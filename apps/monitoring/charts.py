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

from apps.monitoring.selectors import chart_grain, rollup_columns

PERCENTILES = ("p50", "p90", "p95", "p99")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
# Deployment colours stay the same on every chart of a page.
PALETTE = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#d62728", "#8c564b", "#e377c2", "#17becf")
DASH = {"p50": "dot", "p90": "dashdot", "p95": "solid", "p99": "dash"}
# Gateways count requests refused before a deployment was chosen (401, 404) under the name "".
UNROUTED = "(not routed)"


def _name(deployment: str) -> str:
    return deployment or UNROUTED


def _layout(title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    layout = {
        "title": {"text": title},
        "xaxis": {"type": "date", "title": {"text": "time (UTC)"}},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        "legend": {"orientation": "h"},
        "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
        "uirevision": "keep",
    }
    layout.update(extra)
    return layout


def latency_figure(columns: dict[str, dict[str, list[Any]]], *, percentiles: tuple[str, ...] = PERCENTILES) -> dict:
    """Request latency percentiles per deployment (RequestLatency_P50..P99), one line each."""
    data = []
    for index, (deployment, column) in enumerate(sorted(columns.items())):
        x = column["x"]
        for name in percentiles:
            data.append(
                {
                    "type": "scattergl",
                    "mode": "lines",
                    "name": f"{_name(deployment)} {name}",
                    "legendgroup": _name(deployment),
                    "x": x,
                    "y": column[name],
                    "line": {"color": PALETTE[index % len(PALETTE)], "dash": DASH[name], "width": 1.5},
                    "connectgaps": False,
                }
            )
    return {"data": data, "layout": _layout("Request latency", "ms")}


def requests_figure(columns: dict[str, dict[str, list[Any]]], *, grain: int) -> dict:
    """RequestsPerMinute per deployment, stacked."""
    scale = 60 / grain
    data = [
        {
            "type": "scattergl",
            "mode": "lines",
            "name": _name(deployment),
            "x": column["x"],
            "y": [count * scale for count in column["requests"]],
            "stackgroup": "requests",
            "line": {"color": PALETTE[index % len(PALETTE)], "width": 1},
        }
        for index, (deployment, column) in enumerate(sorted(columns.items()))
    ]
    return {"data": data, "layout": _layout("Requests per minute", "requests / min")}


def errors_figure(columns: dict[str, dict[str, list[Any]]], *, grain: int) -> dict:
    """4xx and 5xx per minute per deployment (RequestsPerMinute by statusCodeClass)."""
    scale = 60 / grain
    data = []
    for index, (deployment, column) in enumerate(sorted(columns.items())):
        for status_class, dash in (("4xx", "dot"), ("5xx", "solid")):
            data.append(
                {
                    "type": "scattergl",
                    "mode": "lines",
                    "name": f"{_name(deployment)} {status_class}",
                    "legendgroup": _name(deployment),
                    "x": column["x"],
                    "y": [count * scale for count in column[status_class]],
                    "line": {"color": PALETTE[index % len(PALETTE)], "dash": dash, "width": 1.5},
                }
            )
    return {"data": data, "layout": _layout("Errors per minute", "responses / min")}


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
    layout["xaxis"] = {"type": "category", "title": {"text": "day (UTC)"}}
    return {"data": data, "layout": layout}


def endpoint_figures(
    *, endpoint: str, minutes: int = 60, now: datetime | None = None, mirrored: bool = False
) -> dict[str, dict]:
    """Latency, requests and errors per deployment over the last `minutes` (live or mirrored requests)."""
    now = now or timezone.now()
    start = now - timedelta(minutes=minutes)
    grain = chart_grain(start=start, end=now, now=now)
    columns = rollup_columns(endpoint=endpoint, start=start, end=now, grain=grain, mirrored=mirrored)
    return {
        "latency": latency_figure(columns),
        "requests": requests_figure(columns, grain=grain),
        "errors": errors_figure(columns, grain=grain),
    }


def _has_points(figure: dict[str, Any]) -> bool:
    return any(trace.get("x") for trace in figure.get("data", []))


def monitoring_figures(*, endpoint: str, now: datetime | None = None) -> dict[str, dict] | None:
    """The Monitoring tab's figures: live latency, requests and errors, and the mirrored copies' drawn
    apart; None while nothing was recorded."""
    now = now or timezone.now()
    live = endpoint_figures(endpoint=endpoint, now=now)
    mirrored = endpoint_figures(endpoint=endpoint, now=now, mirrored=True)
    figures: dict[str, dict] = {}
    if any(_has_points(figure) for figure in live.values()):
        figures.update(live)
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

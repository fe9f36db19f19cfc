"""The monitoring pages: the global Monitoring page, an endpoint's Monitoring tab, and its figures as JSON.

Figures come from apps.monitoring.charts (Plotly figure dicts) for the time range in the URL
(`?range=15m|1h|6h|24h|7d|30d`, or `range=custom&start=...&end=...` in UTC) and the latency percentile
(`?percentile=p50|p90|p95|p99`). The tab listens on the charts websocket, to which the metrics task pushes
the default view's figures after each ingest; a page showing another view refetches its own instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone

from apps.core.htmx import is_htmx
from apps.endpoints import selectors
from apps.endpoints.views.common import endpoint_or_404, tab_context
from apps.monitoring import charts, compare
from apps.monitoring.selectors import window_summary

RANGES = {
    "15m": ("15 min", timedelta(minutes=15)),
    "1h": ("1 hour", timedelta(hours=1)),
    "6h": ("6 hours", timedelta(hours=6)),
    "24h": ("24 hours", timedelta(hours=24)),
    "7d": ("7 days", timedelta(days=7)),
    "30d": ("30 days", timedelta(days=30)),
}
DEFAULT_RANGE = "1h"
DEFAULT_PERCENTILE = "p95"
MAX_CUSTOM = timedelta(days=90)
_INPUT_FORMAT = "%Y-%m-%dT%H:%M"


@dataclass(frozen=True)
class Window:
    """The time range and percentile a monitoring page shows, as read from its URL."""

    key: str
    start: datetime
    end: datetime
    percentile: str
    error: str = ""

    @property
    def is_default(self) -> bool:
        return self.key == DEFAULT_RANGE and self.percentile == DEFAULT_PERCENTILE

    def query(self, **override: str) -> str:
        params = {"range": self.key, "percentile": self.percentile}
        if self.key == "custom":
            params.update(start=self.start.strftime(_INPUT_FORMAT), end=self.end.strftime(_INPUT_FORMAT))
        params.update(override)
        query = QueryDict(mutable=True)
        query.update(params)
        return query.urlencode()

    def context(self) -> dict[str, Any]:
        return {
            "window": self,
            "ranges": [
                {"key": key, "label": label, "query": self.query(range=key), "current": key == self.key}
                for key, (label, _) in RANGES.items()
            ],
            "percentiles": [
                {"key": p, "query": self.query(percentile=p), "current": p == self.percentile}
                for p in charts.PERCENTILES
            ],
            "custom_start": self.start.strftime(_INPUT_FORMAT),
            "custom_end": self.end.strftime(_INPUT_FORMAT),
        }


def _parse_time(value: str, name: str) -> datetime:
    try:
        return datetime.strptime(value, _INPUT_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{name}: expected a time like 2026-11-30T14:00 (UTC), got {value!r}") from None


def window_parse(params: QueryDict, *, now: datetime | None = None) -> Window:
    """The Window of a query string; a bad value falls back to the last hour with a message naming it."""
    now = (now or timezone.now()).replace(microsecond=0)
    percentile = params.get("percentile") or DEFAULT_PERCENTILE
    errors = []
    if percentile not in charts.PERCENTILES:
        errors.append(f"percentile: expected one of {', '.join(charts.PERCENTILES)}, got {percentile!r}")
        percentile = DEFAULT_PERCENTILE
    key = params.get("range") or DEFAULT_RANGE
    if key == "custom":
        try:
            start = _parse_time(params.get("start", ""), "start")
            end = _parse_time(params.get("end", ""), "end")
            if end <= start:
                raise ValueError("end: must be after start")
            if end - start > MAX_CUSTOM:
                raise ValueError("range: a custom range spans at most 90 days")
            return Window("custom", start, end, percentile, "; ".join(errors))
        except ValueError as error:
            errors.append(str(error))
            key = DEFAULT_RANGE
    if key not in RANGES:
        errors.append(f"range: expected one of {', '.join(RANGES)} or custom, got {key!r}")
        key = DEFAULT_RANGE
    return Window(key, now - RANGES[key][1], now, percentile, "; ".join(errors))


def _mirror_panel(endpoint: Any, window: Window) -> dict[str, Any] | None:
    """On an endpoint that mirrors (or did in the range): agreement of the shadow's answers with the live ones,
    and its latency beside the live deployments'."""
    targets = set(endpoint.mirror_traffic or {})
    if not targets:
        return None
    tolerance = settings.STUDIO_MIRROR_TOLERANCE_PPM / 1_000_000
    panels = []
    for target in sorted(targets):
        result = compare.agreement(
            endpoint=endpoint.name, deployment=target, start=window.start, end=window.end, rel_tol=tolerance
        )
        shadow = window_summary(endpoint=endpoint.name, deployment=target, start=window.start, end=window.end)
        live = [
            window_summary(
                endpoint=endpoint.name, deployment=name, start=window.start, end=window.end, mirrored=False
            ).view()
            for name in sorted(endpoint.traffic or {})
            if (endpoint.traffic or {}).get(name)
        ]
        rate = result["agreement_rate"]
        panels.append(
            {
                **result,
                "agreement_percent": None if rate is None else round(100 * rate, 2),
                "shadow": shadow.view(),
                "live": live,
            }
        )
    return {"targets": panels, "tolerance": tolerance}


@login_required
def monitoring_index(request: HttpRequest) -> HttpResponse:
    """Every endpoint with small charts of its requests and latency over the chosen range."""
    window = window_parse(request.GET)
    rows = []
    figures: dict[str, dict] = {}
    for endpoint in selectors.endpoints_with_deployments():
        small = charts.overview_figures(endpoint=endpoint.name, start=window.start, end=window.end)
        for key, figure in small.items():
            figure["layout"]["title"] = {"text": f"{endpoint.name}: {figure['layout']['title']['text']}"}
            figures[f"{endpoint.name}-{key}"] = figure
        rows.append({"endpoint": endpoint, "deployments": list(endpoint.deployments.all()), "has_data": bool(small)})
    context = {"rows": rows, "section": "monitoring", "figures_json": figures, **window.context()}
    return render(request, "monitoring/monitoring.html", context)


@login_required
def endpoint_monitoring(request: HttpRequest, name: str) -> HttpResponse:
    """The Monitoring tab: latency, requests, errors, CPU, memory and disk, and the mirror comparison."""
    endpoint = endpoint_or_404(name)
    window = window_parse(request.GET)
    if is_htmx(request) and request.headers.get("HX-Target") == "mirror-live":
        # Mirroring turned on or off elsewhere: the comparison alone, without the figures (they come pushed).
        context = {"endpoint": endpoint, "mirror": _mirror_panel(endpoint, window), "window": window}
        return render(request, "monitoring/partials/_mirror_live.html", context)
    figures = charts.monitoring_figures(
        endpoint=endpoint.name, start=window.start, end=window.end, percentile=window.percentile
    )
    context = tab_context(
        request,
        endpoint,
        "monitoring",
        figures=figures,
        figures_json=figures or {},
        mirror=_mirror_panel(endpoint, window),
        **window.context(),
    )
    return render(request, "monitoring/endpoint_monitoring.html", context)


@login_required
def endpoint_figures_json(request: HttpRequest, name: str) -> HttpResponse:
    """The figures of one endpoint as JSON for the range in the query (the tab's refetch after a push)."""
    endpoint = endpoint_or_404(name)
    window = window_parse(request.GET)
    figures = charts.monitoring_figures(
        endpoint=endpoint.name, start=window.start, end=window.end, percentile=window.percentile
    )
    return JsonResponse({"figures": figures})

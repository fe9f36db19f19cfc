"""Monitoring and costs pages, and the chart data the endpoint's Monitoring tab draws.

Charts come from apps.monitoring.charts (pure Plotly figure dicts) and costs from apps.costs.selectors;
a page with nothing recorded yet says so.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from apps.core.errors import NotFound
from apps.costs import selectors as cost_selectors
from apps.costs.models import InstanceType
from apps.endpoints import selectors
from apps.endpoints.models import Endpoint, ProvisioningState
from apps.monitoring import charts

logger = logging.getLogger(__name__)


def _has_points(figure: dict[str, Any]) -> bool:
    return any(trace.get("x") for trace in figure.get("data", []))


def endpoint_figures(endpoint: Endpoint) -> dict[str, Any] | None:
    """Live figures (latency percentiles, requests per minute, errors) and mirrored ones drawn apart, or None."""
    live = charts.endpoint_figures(endpoint=endpoint.name)
    mirrored = charts.endpoint_figures(endpoint=endpoint.name, mirrored=True)
    figures: dict[str, Any] = {}
    if any(_has_points(figure) for figure in live.values()):
        figures.update(live)
    for key, figure in mirrored.items():
        if key != "errors" and _has_points(figure):
            title = figure.get("layout", {}).get("title", {})
            if isinstance(title, dict) and "text" in title:
                figure["layout"]["title"] = {**title, "text": f"{title['text']} (mirrored copies)"}
            figures[f"mirrored_{key}"] = figure
    return figures or None


def endpoint_costs(endpoint: Endpoint) -> dict[str, Any] | None:
    """Accrued costs of one endpoint (per deployment per day, month to date, projected)."""
    return cost_selectors.endpoint_costs(endpoint=endpoint.name)


def cost_figures(costs: dict[str, Any] | None) -> dict[str, Any] | None:
    """The cost-per-day bar chart of an endpoint's accrued costs, or None when nothing accrued yet."""
    if not costs or not costs.get("per_deployment_per_day"):
        return None
    return {"cost": charts.cost_figure(costs["per_deployment_per_day"], currency=settings.STUDIO_CURRENCY)}


@login_required
def endpoint_figures_json(request: HttpRequest, name: str) -> HttpResponse:
    """The figures of one endpoint as JSON (the Monitoring tab's first draw and its fallback)."""
    try:
        endpoint = selectors.endpoint_get(name=name)
    except NotFound as exc:
        raise Http404(exc.message) from None
    return JsonResponse({"figures": endpoint_figures(endpoint)})


@login_required
def monitoring_index(request: HttpRequest) -> HttpResponse:
    """Every endpoint with a link to its live charts."""
    rows = []
    for endpoint in selectors.endpoints_list().prefetch_related("deployments"):
        deployments = list(endpoint.deployments.all())
        rows.append({"endpoint": endpoint, "deployments": deployments})
    return render(request, "monitoring/monitoring.html", {"rows": rows, "section": "monitoring"})


@login_required
def costs_index(request: HttpRequest) -> HttpResponse:
    """What each endpoint costs a day at its current size, and its accrued costs when recorded."""
    prices = dict(InstanceType.objects.values_list("name", "price_per_hour"))
    rows = []
    total = Decimal(0)
    for endpoint in selectors.endpoints_list().prefetch_related("deployments"):
        per_day = Decimal(0)
        for deployment in endpoint.deployments.all():
            if deployment.state in (ProvisioningState.DELETING, ProvisioningState.FAILED):
                continue
            per_day += prices.get(deployment.instance_type, Decimal(0)) * deployment.instance_count * 24
        per_day = per_day.quantize(Decimal("0.01"))
        total += per_day
        rows.append({"endpoint": endpoint, "per_day": per_day, "accrued": endpoint_costs(endpoint)})
    context = {
        "rows": rows,
        "total_per_day": total,
        "section": "costs",
        "currency": settings.STUDIO_CURRENCY,
        "quota": selectors.quota_summary(),
    }
    return render(request, "monitoring/costs.html", context)

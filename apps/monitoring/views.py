"""The monitoring pages: the global Monitoring page, an endpoint's Monitoring tab, and its figures as JSON.

Figures come from apps.monitoring.charts (Plotly figure dicts); the tab then listens on the charts
websocket, to which the metrics task pushes new figures after each ingest. A page with nothing
recorded yet says so.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from apps.endpoints import selectors
from apps.endpoints.views.common import endpoint_or_404, tab_context
from apps.monitoring import charts


@login_required
def monitoring_index(request: HttpRequest) -> HttpResponse:
    """Every endpoint with a link to its live charts."""
    rows = [
        {"endpoint": endpoint, "deployments": list(endpoint.deployments.all())}
        for endpoint in selectors.endpoints_with_deployments()
    ]
    return render(request, "monitoring/monitoring.html", {"rows": rows, "section": "monitoring"})


@login_required
def endpoint_monitoring(request: HttpRequest, name: str) -> HttpResponse:
    """The Monitoring tab: live latency, request rate and error charts."""
    endpoint = endpoint_or_404(name)
    figures = charts.monitoring_figures(endpoint=endpoint.name)
    context = tab_context(request, endpoint, "monitoring", figures=figures, figures_json=figures or {})
    return render(request, "monitoring/endpoint_monitoring.html", context)


@login_required
def endpoint_figures_json(request: HttpRequest, name: str) -> HttpResponse:
    """The figures of one endpoint as JSON (the Monitoring tab's first draw and its fallback)."""
    endpoint = endpoint_or_404(name)
    return JsonResponse({"figures": charts.monitoring_figures(endpoint=endpoint.name)})

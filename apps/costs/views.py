"""The costs pages: the global Costs page and an endpoint's Costs tab.

Every figure comes from apps.costs.selectors.cost_book (the one definition the API and the CLI show
too) and is rounded once, in the template (`money`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from apps.costs import selectors
from apps.endpoints import catalog
from apps.endpoints import selectors as endpoint_selectors
from apps.endpoints.views.common import endpoint_or_404, tab_context
from apps.monitoring import charts


def _cost_chart(accrued: dict[str, Any]) -> dict[str, Any]:
    """The cost-per-day bar chart of an endpoint's accrued costs; empty when nothing accrued yet."""
    if not accrued.get("per_deployment_per_day"):
        return {}
    return {"cost": charts.cost_figure(accrued["per_deployment_per_day"], currency=settings.STUDIO_CURRENCY)}


@login_required
def costs_index(request: HttpRequest) -> HttpResponse:
    """What each endpoint costs a day at its current size, this month so far, and the month projected."""
    book = selectors.cost_book()
    rows = [
        {"endpoint": endpoint, "costs": book.endpoint(endpoint.name)}
        for endpoint in endpoint_selectors.endpoints_list()
    ]
    context = {
        "rows": rows,
        "deployment_rows": [
            {"endpoint": endpoint, "deployment": name, "costs": figures}
            for (endpoint, name), figures in sorted(book.deployments.items())
        ],
        "month": book.month,
        "total": book.total,
        "section": "costs",
        "currency": book.currency,
        "quota": catalog.quota_summary(),
    }
    return render(request, "costs/costs.html", context)


@login_required
def endpoint_costs(request: HttpRequest, name: str) -> HttpResponse:
    """The Costs tab: per deployment per hour, day and month at the current size; accrued per day, month to
    date, projected month."""
    endpoint = endpoint_or_404(name)
    context = tab_context(request, endpoint, "costs")
    now = timezone.now()
    book = selectors.cost_book(endpoint=endpoint.name, now=now)
    prices = selectors.instance_type_prices()
    context["rates"] = [
        {
            "deployment": d,
            "price": prices.get(d.instance_type, Decimal(0)),
            "costs": book.deployment(endpoint.name, d.name),
        }
        for d in context["deployments"]
    ]
    context["costs"] = selectors.endpoint_costs(endpoint=endpoint.name, now=now, book=book)
    context["figures_json"] = _cost_chart(context["costs"])
    return render(request, "costs/endpoint_costs.html", context)

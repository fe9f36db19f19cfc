"""The costs pages: the global Costs page and an endpoint's Costs tab.

Every figure comes from apps.costs.selectors.cost_book (the one definition the API and the CLI show
too) and is rounded once, in the template (`money`).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import yaml as pyyaml
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from apps.accounts.permissions import requires
from apps.core.errors import ApplicationError
from apps.core.htmx import error_status, redirect
from apps.costs import autoscale, selectors, services
from apps.endpoints import catalog
from apps.endpoints import selectors as endpoint_selectors
from apps.endpoints.views.common import deployment_or_404, endpoint_or_404, tab_context
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


AUTOSCALE_EXAMPLE = """capacity: {minimum: 1, maximum: 3, default: 1}
rules:
  - {metric: RequestsPerInstancePerMinute, operator: GreaterThan, threshold: 600, direction: Increase, change: 1}
  - {metric: RequestsPerInstancePerMinute, operator: LessThan, threshold: 100, direction: Decrease, change: 1}
profiles: []
"""


def _setting_text(setting: object) -> str:
    if setting is None:
        return AUTOSCALE_EXAMPLE
    view = autoscale.setting_view(setting)  # type: ignore[arg-type]
    doc = {key: view[key] for key in autoscale.SETTING_KEYS}
    return pyyaml.safe_dump(doc, sort_keys=False)


@login_required
@require_http_methods(["GET", "POST"])
@requires(POST="autoscale.set")
def deployment_autoscale(request: HttpRequest, name: str, deployment: str) -> HttpResponse:
    """A deployment's autoscale: its rules and schedule profiles, the last decisions and why, the instance count
    over time; the setting can be edited as YAML (checked by the same service as the API and the CLI)."""
    endpoint = endpoint_or_404(name)
    row = deployment_or_404(endpoint, deployment)
    setting = autoscale.setting_find(deployment=row)
    text = _setting_text(setting)
    error = None
    if request.method == "POST":
        try:
            if request.POST.get("action") == "delete":
                services.autoscale_delete(deployment=row)
                messages.success(request, f"Autoscale of {row.name} removed; its instance count stays as it is.")
            else:
                text = request.POST.get("setting", "")
                try:
                    spec = pyyaml.safe_load(text)
                except pyyaml.YAMLError as exc:
                    raise ApplicationError(f"the setting is not valid YAML ({' '.join(str(exc).split())})") from None
                services.autoscale_set(deployment=row, spec=json.loads(json.dumps(spec, default=str)))
                messages.success(request, f"Autoscale of {row.name} saved.")
            return redirect(request, reverse("deployment-autoscale", args=[endpoint.name, row.name]))
        except ApplicationError as exc:
            error = exc.message
    history = autoscale.instance_count_history(deployment=row)
    figures = {"instances": charts.instance_count_figure(history)} if history else {}
    context = tab_context(
        request,
        endpoint,
        "details",
        deployment=row,
        setting=autoscale.setting_view(setting) if setting else None,
        setting_text=text,
        setting_error=error,
        decisions=autoscale.decisions(deployment=row),
        history=history[-20:][::-1],
        figures_json=figures,
        metrics=autoscale.METRICS,
    )
    return render(
        request, "costs/deployment_autoscale.html", context, status=error_status(request, 400 if error else 200)
    )

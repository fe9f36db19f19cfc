"""The Traffic tab: sliders that sum to 100, the mirror, what the split means for the bill, Apply,
and the history of changes with revert.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import requires
from apps.core.errors import ApplicationError, NotFound
from apps.core.htmx import redirect, render_page_or_fragment
from apps.costs import selectors as cost_selectors
from apps.endpoints import selectors, services
from apps.endpoints.forms import TrafficForm
from apps.endpoints.models import Deployment, Endpoint, ProvisioningState
from apps.endpoints.views.common import endpoint_or_404, form_error, tab_context
from apps.rollouts.views import rollout_context


def _routable(deployments: list[Deployment]) -> list[Deployment]:
    return [d for d in deployments if d.state != ProvisioningState.DELETING]


def _traffic_context(request: HttpRequest, endpoint: Endpoint, form: TrafficForm | None = None) -> dict[str, Any]:
    context = tab_context(request, endpoint, "traffic")
    names = [d.name for d in _routable(context["deployments"])]
    idle = [n for n in names if not endpoint.traffic.get(n)]
    mirror_name, mirror_percent = next(iter(endpoint.mirror_traffic.items()), (idle[0] if idle else "", 0))
    if form is None:
        initial: dict[str, Any] = {f"traffic_{n}": endpoint.traffic.get(n, 0) for n in names}
        initial.update(
            {
                "mirror_enabled": bool(mirror_percent),
                "mirror_deployment": mirror_name,
                "mirror_percent": mirror_percent or 10,
                "version": endpoint.version,
            }
        )
        form = TrafficForm(initial=initial, deployments=names)
    context["form"] = form
    context["sliders"] = [
        {"deployment": d, "field": form[f"traffic_{d.name}"], "current": endpoint.traffic.get(d.name, 0)}
        for d in _routable(context["deployments"])
    ]
    context["mirror_current"] = next(iter(endpoint.mirror_traffic.items()), ("", 0))
    context.update(rollout_context(request, endpoint))
    split = {n: _percent(form[f"traffic_{n}"].value()) for n in names}
    mirror_to = str(form["mirror_deployment"].value() or "") if form["mirror_enabled"].value() else ""
    context["effect"] = cost_selectors.split_cost_effect(
        endpoint=endpoint.name, deployments=names, traffic=split, mirror_to=mirror_to
    )
    context["history"] = list(selectors.traffic_changes(endpoint=endpoint)[:50])
    return context


def _percent(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@login_required
@require_http_methods(["GET", "POST"])
@requires(POST="traffic.set")
def endpoint_traffic(request: HttpRequest, name: str) -> HttpResponse:
    """The Traffic tab: sliders that sum to 100, the mirror, Apply, and the history with revert."""
    endpoint = endpoint_or_404(name)
    page, fragment = "endpoints/endpoint_traffic.html", "endpoints/partials/_traffic.html"
    if request.method == "POST":
        names = [d.name for d in _routable(list(selectors.deployments_list(endpoint=endpoint)))]
        form = TrafficForm(request.POST, deployments=names)
        if form.is_valid():
            try:
                endpoint = services.traffic_set(
                    endpoint=endpoint,
                    traffic=form.traffic(),
                    mirror_traffic=form.mirror(),
                    user=request.user,
                    if_match=form.cleaned_data.get("version"),
                )
            except services.PreconditionFailed as exc:
                # Drawn from an older version: show what is there now, never overwrite it.
                endpoint.refresh_from_db()
                context = _traffic_context(request, endpoint)
                context["stale"] = f"Not applied: {exc.message}. The form now shows the current values."
                return render_page_or_fragment(request, page, fragment, context, status=412)
            except ApplicationError as exc:
                form_error(form, exc, {"traffic": "__all__", "mirror_traffic": "mirror_percent"})
            else:
                messages.success(request, "Traffic applied.")
                return redirect(request, reverse("endpoint-traffic", args=[endpoint.name]))
        return render_page_or_fragment(request, page, fragment, _traffic_context(request, endpoint, form), status=400)
    return render_page_or_fragment(request, page, fragment, _traffic_context(request, endpoint))


@login_required
@require_GET
def traffic_cost(request: HttpRequest, name: str) -> HttpResponse:
    """The cost line of a split being edited (the Traffic tab fetches it as the sliders move)."""
    endpoint = endpoint_or_404(name)
    names = [d.name for d in _routable(list(selectors.deployments_list(endpoint=endpoint)))]
    split = {n: _percent(request.GET.get(f"traffic_{n}")) for n in names}
    mirror_to = request.GET.get("mirror_deployment", "") if request.GET.get("mirror_enabled") else ""
    context = {
        "endpoint": endpoint,
        "effect": cost_selectors.split_cost_effect(
            endpoint=endpoint.name, deployments=names, traffic=split, mirror_to=mirror_to
        ),
        "currency": settings.STUDIO_CURRENCY,
    }
    return render(request, "endpoints/partials/_traffic_cost.html", context)


@login_required
@require_POST
@requires("traffic.set")
def traffic_revert(request: HttpRequest, name: str, change_id: int) -> HttpResponse:
    """Put back the traffic and mirror as they were before one recorded change."""
    endpoint = endpoint_or_404(name)
    try:
        change = selectors.traffic_change_get(endpoint=endpoint, change_id=change_id)
    except NotFound as exc:
        raise Http404(exc.message) from None
    try:
        services.traffic_set(
            endpoint=endpoint, traffic=change.traffic_before, mirror_traffic=change.mirror_before, user=request.user
        )
    except ApplicationError as exc:
        messages.error(request, f"Could not revert: {exc.message}")
    else:
        messages.success(request, "Traffic reverted.")
    return redirect(request, reverse("endpoint-traffic", args=[endpoint.name]))

"""The rollout panel of the Traffic tab: start a rollout, and while one runs its steps, gates and buttons."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.core.errors import ApplicationError, NotFound
from apps.core.htmx import redirect
from apps.endpoints import selectors as endpoint_selectors
from apps.endpoints.models import Endpoint, ProvisioningState
from apps.endpoints.views.common import endpoint_or_404, form_error
from apps.rollouts import selectors, services
from apps.rollouts.forms import RolloutForm
from apps.rollouts.models import Rollout

PANEL = "rollouts/partials/_rollout.html"


def _targets(endpoint: Endpoint) -> list[str]:
    """Deployments a rollout can move traffic to: succeeded ones (any, the baseline is the others)."""
    return [
        d.name for d in endpoint_selectors.deployments_list(endpoint=endpoint) if d.state == ProvisioningState.SUCCEEDED
    ]


def rollout_context(request: HttpRequest, endpoint: Endpoint, form: RolloutForm | None = None) -> dict[str, Any]:
    """What the rollout panel draws: the running (or last) rollout, and the start form."""
    try:
        latest: Rollout | None = selectors.rollout_latest(endpoint=endpoint)
    except NotFound:
        latest = None
    targets = _targets(endpoint)
    idle = [name for name in targets if not endpoint.traffic.get(name)]
    if form is None:
        form = RolloutForm(targets=targets, initial={"deployment": idle[0] if idle else ""}, prefix="rollout")
    view = selectors.rollout_view(latest) if latest is not None else None
    return {
        "rollout": latest,
        "rollout_view": view,
        "rollout_figures": selectors.rollout_figures(latest) if latest is not None and latest.active else None,
        "rollout_form": form,
        "rollout_steps": [
            {
                "number": i + 1,
                "percent": p,
                "current": latest is not None and latest.phase == "live" and latest.step == i,
            }
            for i, p in enumerate(latest.spec["steps"])
        ]
        if latest is not None
        else [],
    }


@login_required
@require_GET
def rollout_panel(request: HttpRequest, name: str) -> HttpResponse:
    """The panel alone (htmx refreshes it when a rollout or the traffic changes)."""
    endpoint = endpoint_or_404(name)
    return render(request, PANEL, {"endpoint": endpoint, **rollout_context(request, endpoint)})


@login_required
@require_GET
def rollout_figures_json(request: HttpRequest, name: str) -> HttpResponse:
    """The running (or last) rollout's target and baseline charts as JSON (the panel refetches them on each push)."""
    endpoint = endpoint_or_404(name)
    try:
        rollout = selectors.rollout_latest(endpoint=endpoint)
    except NotFound as exc:
        return JsonResponse({"error": {"code": "NotFound", "message": exc.message}}, status=404)
    return JsonResponse({"figures": selectors.rollout_figures(rollout)})


@login_required
@require_POST
def rollout_start(request: HttpRequest, name: str) -> HttpResponse:
    """Start a rollout from the panel's form; errors are shown on the form."""
    endpoint = endpoint_or_404(name)
    form = RolloutForm(request.POST, targets=_targets(endpoint), prefix="rollout")
    if form.is_valid():
        try:
            services.rollout_start(endpoint=endpoint, doc=form.document(), user=request.user)
        except ApplicationError as exc:
            form_error(form, exc, {"gates.max_error_rate": "max_error_rate", "gates.max_p99_ratio": "max_p99_ratio"})
        else:
            messages.success(request, "Rollout started.")
            return redirect(request, reverse("endpoint-traffic", args=[endpoint.name]))
    endpoint.refresh_from_db()
    return render(request, PANEL, {"endpoint": endpoint, **rollout_context(request, endpoint, form)})


@login_required
@require_POST
def rollout_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    """Pause, resume, promote or abort from the panel's buttons."""
    endpoint = endpoint_or_404(name)
    try:
        rollout = selectors.rollout_latest(endpoint=endpoint)
        services.rollout_act(rollout=rollout, action=action, user=request.user)
    except ApplicationError as exc:
        messages.error(request, f"Could not {action} the rollout: {exc.message}")
    else:
        messages.success(request, f"Rollout: {action} done.")
    return redirect(request, reverse("endpoint-traffic", args=[endpoint.name]))

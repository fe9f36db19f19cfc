"""The deployment pages: a deployment's card on the Details tab (refresh, size, delete), adding a
deployment to an endpoint, and the price and quota estimate the create forms show.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import requires
from apps.accounts.roles import check
from apps.core.errors import ApplicationError
from apps.core.htmx import error_status, is_htmx, redirect
from apps.costs import selectors as cost_selectors
from apps.costs.selectors import CostBook
from apps.endpoints import catalog, selectors, services
from apps.endpoints.forms import DeploymentForm, ScaleForm
from apps.endpoints.models import Deployment, Endpoint, ProvisioningState, Upload
from apps.endpoints.views.common import (
    deployment_or_404,
    endpoint_or_404,
    form_error,
    is_archive,
    tab_context,
    upload_files,
)

# The service's field names, as the deployment forms call them.
DEPLOYMENT_FIELD_MAP = {
    "name": "deployment_name",
    "code_configuration.code": "code_files",
    "code_configuration.scoring_script": "scoring_script",
    "code_configuration": "code_files",
}


def estimate_context(instance_type: Any, instance_count: Any) -> dict[str, Any]:
    """The price and quota of a deployment size as the forms show it; no estimate for a size that is not one."""
    quota = catalog.quota_summary()
    context: dict[str, Any] = {"quota": quota, "currency": settings.STUDIO_CURRENCY, "estimate": None}
    row = catalog.instance_type_find(name=str(instance_type or ""))
    try:
        count = int(instance_count)
    except (TypeError, ValueError):
        return context
    if row is None or not 1 <= count <= 50:
        return context
    needed = catalog.cores_needed(instance_count=count, vcpus=row.vcpus)
    context.update(
        {
            "estimate": cost_selectors.cost_estimate(instance_type=row.name, instance_count=count),
            "instance_type": row,
            "price_per_hour": cost_selectors.price_per_hour(instance_type=row.name),
            "instance_count": count,
            "cores_needed": needed,
            "quota_short": needed > quota["free"],
        }
    )
    return context


def deployment_form_context(form: DeploymentForm) -> dict[str, Any]:
    """What the deployment forms show beside their fields: the estimate of the size chosen, what is missing."""
    return {
        **estimate_context(form["instance_type"].value(), form["instance_count"].value()),
        **selectors.deploy_prerequisites(),
    }


@login_required
@require_GET
def deployment_estimate(request: HttpRequest) -> HttpResponse:
    """The estimate of a deployment size (the create forms fetch it as you choose the size)."""
    context = estimate_context(request.GET.get("instance_type"), request.GET.get("instance_count"))
    return render(request, "endpoints/partials/_estimate.html", context)


def code_upload(form: DeploymentForm, user: Any) -> Upload:
    files = form.cleaned_data["code_files"]
    return upload_files(files, folder_name="code", unpack=is_archive(files), user=user)


# Failures of the step that copies model and code: their story is in the storage initializer's log.
_INITIALIZER_REASONS = frozenset({"StorageInitializerFailed", "ModelNotFound"})
_BROKEN_INSTANCE_STATES = frozenset({"CrashLoopBackOff", "Failed", "Unready"})


def failure_logs_url(deployment: Deployment, instances: list[Any]) -> str:
    """The Logs tab at the instance and container that tell why a deployment failed."""
    broken = [i for i in instances if i.state in _BROKEN_INSTANCE_STATES]
    instance = (broken or instances or [None])[0]
    container = "storage-initializer" if deployment.reason in _INITIALIZER_REASONS else "inference-server"
    query = urlencode(
        {"deployment": deployment.name, "instance": instance.name if instance else "", "container": container}
    )
    return f"{reverse('endpoint-logs', args=[deployment.endpoint.name])}?{query}"


def card_context(deployment: Deployment, book: CostBook, instance_types: list[str]) -> dict[str, Any]:
    """What one deployment's card draws."""
    instances = list(deployment.instances.all())
    return {
        "instance_types": instance_types,
        "deployment": deployment,
        "stages": selectors.deployment_stages(deployment=deployment),
        "instances": instances,
        "logs_url": failure_logs_url(deployment, instances) if deployment.state == ProvisioningState.FAILED else "",
        "busy": deployment.state in selectors.BUSY_STATES or deployment.state == ProvisioningState.DELETING,
        "live": deployment.endpoint.traffic.get(deployment.name, 0),
        "mirrored": deployment.endpoint.mirror_traffic.get(deployment.name, 0),
        "costs": book.deployment(deployment.endpoint.name, deployment.name),
    }


def cards_context(endpoint: Endpoint, deployments: list[Deployment]) -> list[dict[str, Any]]:
    book = cost_selectors.cost_book(endpoint=endpoint.name)
    names = catalog.instance_type_names()
    return [card_context(deployment, book, names) for deployment in deployments]


def _card(
    request: HttpRequest, endpoint: Endpoint, deployment: Deployment, *, error: str | None, status: int
) -> HttpResponse:
    [card] = cards_context(endpoint, [deployment])
    context = {**card, "endpoint": endpoint, "card_error": error, "currency": settings.STUDIO_CURRENCY}
    return render(request, "endpoints/partials/_deployment_card.html", context, status=error_status(request, status))


@login_required
def deployment_card(request: HttpRequest, name: str, deployment: str) -> HttpResponse:
    """One deployment's card (htmx refreshes it when the deployment's state changes)."""
    endpoint = endpoint_or_404(name)
    row = selectors.deployment_find(endpoint=endpoint.name, name=deployment)
    if row is None:  # deleted while the page was open: say so instead of a 404 the page cannot show
        return render(request, "endpoints/partials/_deployment_gone.html", {"endpoint": endpoint, "name": deployment})
    return _card(request, endpoint, row, error=None, status=200)


@login_required
@require_POST
@requires("deployment.scale")
def deployment_scale(request: HttpRequest, name: str, deployment: str) -> HttpResponse:
    """Change a deployment's instance count (a scale) or its instance type too (a rolling update)."""
    endpoint = endpoint_or_404(name)
    row = deployment_or_404(endpoint, deployment)
    form = ScaleForm(request.POST)
    error = None
    if form.is_valid():
        count = form.cleaned_data["instance_count"]
        instance_type = form.cleaned_data["instance_type"] or row.instance_type
        try:
            if instance_type != row.instance_type:
                check(request.user, "deployment.update")  # a new size is a rolling update, not a scale
                services.deployment_update(
                    deployment=row,
                    changes={"instance_type": instance_type, "instance_count": count},
                    user=request.user,
                )
            else:
                services.deployment_scale(
                    deployment=row,
                    instance_count=count,
                    reason=f"set to {count} in the studio by {request.user.get_username()}",
                    user=request.user,
                )
        except ApplicationError as exc:
            error = exc.message
    else:
        error = "; ".join(f"{field}: {' '.join(str(e) for e in errs)}" for field, errs in form.errors.items())
    row = deployment_or_404(endpoint, deployment)
    return _card(request, endpoint, row, error=error, status=400 if error else 200)


@login_required
@require_POST
@requires("deployment.delete")
def deployment_delete(request: HttpRequest, name: str, deployment: str) -> HttpResponse:
    """Delete a deployment; refused with the reason while it takes live or mirrored traffic."""
    endpoint = endpoint_or_404(name)
    row = deployment_or_404(endpoint, deployment)
    try:
        services.deployment_delete(deployment=row, user=request.user)
    except ApplicationError as exc:
        return _card(request, endpoint, row, error=exc.message, status=409)
    row = deployment_or_404(endpoint, deployment)
    if is_htmx(request):
        return _card(request, endpoint, row, error=None, status=200)
    messages.success(request, f"Deleting deployment {deployment}.")
    return redirect(request, reverse("endpoint", args=[endpoint.name]))


@login_required
@require_http_methods(["GET", "POST"])
@requires("deployment.create")
def deployment_create(request: HttpRequest, name: str) -> HttpResponse:
    """Add a deployment to an endpoint (it takes no traffic until you move the slider)."""
    endpoint = endpoint_or_404(name)
    # Start from what the endpoint serves now, not from whichever model sorts first.
    model, environment = selectors.endpoint_serving_assets(endpoint=endpoint)
    initial = {"deployment_name": "green", "model": model, "environment": environment}
    form = DeploymentForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                upload = code_upload(form, request.user)
                deployment = services.deployment_create(
                    endpoint=endpoint, spec=form.deployment_spec(f"upload:{upload.uid}"), user=request.user
                )
        except ApplicationError as exc:
            form_error(form, exc, DEPLOYMENT_FIELD_MAP)
        else:
            messages.success(
                request, f"Creating deployment {deployment.name}; it takes no traffic until you give it some."
            )
            return redirect(request, reverse("endpoint", args=[endpoint.name]))
    context = tab_context(request, endpoint, "details", form=form, **deployment_form_context(form))
    return render(request, "endpoints/deployment_create.html", context, status=400 if form.errors else 200)

"""The Endpoints pages: the list, the create wizard, an endpoint's Details tab, deleting an endpoint."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.permissions import requires
from apps.core.errors import ApplicationError
from apps.core.htmx import is_htmx, redirect, render_page_or_fragment
from apps.costs import selectors as cost_selectors
from apps.endpoints import lists, selectors, services
from apps.endpoints.forms import EndpointEditForm, EndpointWizardForm, format_pairs
from apps.endpoints.models import ProvisioningState
from apps.endpoints.views.common import endpoint_or_404, form_error, list_page, tab_context
from apps.endpoints.views.deployments import DEPLOYMENT_FIELD_MAP, cards_context, code_upload, deployment_form_context
from apps.rollouts import selectors as rollout_selectors


@login_required
def endpoints_list(request: HttpRequest) -> HttpResponse:
    """Endpoints with their state, traffic split and cost per day: searched, filtered, sorted and paged."""
    page, error = list_page(request, lists.ENDPOINT_SORTS, lists.endpoints_page)
    # The cost of this page's endpoints only: the work follows the page, not the size of the studio.
    book = cost_selectors.cost_book(endpoints=[endpoint.name for endpoint in page.items])
    rollouts = rollout_selectors.active_by_endpoint()
    rows = []
    for endpoint in page.items:
        rows.append(
            {
                "endpoint": endpoint,
                "deployments": list(endpoint.deployments.all()),
                "state": selectors.endpoint_state(endpoint),
                "traffic": [(n, p) for n, p in endpoint.traffic.items() if p],
                "mirror": list(endpoint.mirror_traffic.items()),
                "costs": book.endpoint(endpoint.name),
                "rollout": rollouts.get(endpoint.pk),
            }
        )
    columns = page.columns(
        ("Name", "name"),
        ("State", "state"),
        ("Deployments", ""),
        ("Traffic", ""),
        ("Cost per day", ""),
        ("Auth", ""),
        ("Created", "created"),
        ("Updated", "updated"),
    )
    context = {
        "rows": rows,
        "page": page,
        "columns": columns,
        "list_id": "endpoints",
        "list_error": error,
        "states": ProvisioningState.values,
        "compute_filter": True,
        "section": "endpoints",
        "currency": settings.STUDIO_CURRENCY,
    }
    return render_page_or_fragment(
        request,
        "endpoints/endpoints_list.html",
        "endpoints/partials/_endpoints_table.html",
        context,
    )


@login_required
@require_http_methods(["GET", "POST"])
@requires("endpoint.create")
def endpoint_create(request: HttpRequest) -> HttpResponse:
    """The wizard: endpoint, first deployment, review, create; then the endpoint page shows the progress."""
    form = EndpointWizardForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        field_map: dict[str, str] = {}  # the endpoint's errors name its own fields
        try:
            with transaction.atomic():
                endpoint = services.endpoint_create(
                    spec={"name": data["name"], "auth_mode": data["auth_mode"], "description": data["description"]},
                    user=request.user,
                )
                field_map = DEPLOYMENT_FIELD_MAP  # from here on "name" means the deployment's
                upload = code_upload(form, request.user)
                deployment = services.deployment_create(
                    endpoint=endpoint, spec=form.deployment_spec(f"upload:{upload.uid}"), user=request.user
                )
                if data["all_traffic"]:
                    services.traffic_set(endpoint=endpoint, traffic={deployment.name: 100}, user=request.user)
        except ApplicationError as exc:
            form_error(form, exc, field_map)
        else:
            messages.success(request, f"Creating endpoint {endpoint.name} with deployment {deployment.name}.")
            return redirect(request, reverse("endpoint", args=[endpoint.name]))
    context: dict[str, Any] = {"form": form, "section": "endpoints", **deployment_form_context(form)}
    if form.errors:
        context["reselect_files"] = bool(request.FILES)
    return render(request, "endpoints/endpoint_create.html", context, status=400 if form.errors else 200)


def _edit_form(endpoint: Any, data: Any = None) -> EndpointEditForm:
    initial = {"description": endpoint.description, "tags": format_pairs(endpoint.tags), "version": endpoint.version}
    return EndpointEditForm(data, initial=initial)


def _details_context(request: HttpRequest, endpoint: Any, form: EndpointEditForm | None = None) -> dict[str, Any]:
    context = tab_context(request, endpoint, "details")
    deployments = context["deployments"]
    context["cards"] = cards_context(endpoint, deployments)
    context["attributes"] = selectors.endpoint_attributes(endpoint=endpoint, deployments=deployments)
    context["edit_form"] = form or _edit_form(endpoint)
    return context


@login_required
def endpoint_detail(request: HttpRequest, name: str) -> HttpResponse:
    """The Details tab: the endpoint's attributes and traffic, then one card per deployment."""
    endpoint = endpoint_or_404(name)
    context = _details_context(request, endpoint)
    if is_htmx(request) and request.headers.get("HX-Target") in ("endpoint-attributes", "traffic-summary"):
        # The attributes follow the deployments' states; the traffic summary in them follows the traffic.
        return render(request, "endpoints/partials/_attributes.html", context)
    return render_page_or_fragment(
        request, "endpoints/endpoint_details.html", "endpoints/partials/_deployment_cards.html", context
    )


@login_required
@require_GET
def endpoint_serving(request: HttpRequest, name: str) -> HttpResponse:
    """The "serving now" strip alone (htmx redraws it on the Monitoring and Costs tabs when traffic or a
    deployment changes)."""
    endpoint = endpoint_or_404(name)
    return render(request, "endpoints/partials/_serving.html", tab_context(request, endpoint, ""))


@login_required
@require_POST
@requires(POST="endpoint.update")
def endpoint_edit(request: HttpRequest, name: str) -> HttpResponse:
    """Change the endpoint's description and tags (the same service as `online-endpoint update`)."""
    endpoint = endpoint_or_404(name)
    form = _edit_form(endpoint, request.POST)
    if form.is_valid():
        try:
            services.endpoint_update(
                endpoint=endpoint,
                changes={"description": form.cleaned_data["description"], "tags": form.cleaned_data["tags"]},
                user=request.user,
                if_match=form.cleaned_data["version"],
            )
        except ApplicationError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Saved the description and tags of {endpoint.name}.")
            return redirect(request, reverse("endpoint", args=[endpoint.name]))
    context = _details_context(request, endpoint_or_404(name), form)
    return render(request, "endpoints/endpoint_details.html", context, status=400)


@login_required
@require_POST
@requires("endpoint.delete")
def endpoint_delete(request: HttpRequest, name: str) -> HttpResponse:
    """Delete the endpoint and all its deployments (their instances stop in the background)."""
    endpoint = endpoint_or_404(name)
    try:
        services.endpoint_delete(endpoint=endpoint, user=request.user)
    except ApplicationError as exc:
        messages.error(request, f"Could not delete online endpoint {name}: {exc.message}")
        return redirect(request, reverse("endpoint", args=[name]))
    messages.success(request, f"Deleting online endpoint {name} and its deployments.")
    return redirect(request, reverse("endpoints"))

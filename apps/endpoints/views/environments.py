"""The Environments pages: the list, registering a version, an environment's versions with build logs."""

from __future__ import annotations

from typing import Any

import yaml
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.accounts.permissions import requires
from apps.core.errors import ApplicationError, NotFound
from apps.core.htmx import redirect
from apps.endpoints import lists, selectors, services
from apps.endpoints.forms import EnvironmentForm
from apps.endpoints.views.common import form_error, list_page


@login_required
def environments_list(request: HttpRequest) -> HttpResponse:
    """Environment names with their newest version: searched, filtered, sorted and paged."""
    page, error = list_page(request, lists.ASSET_SORTS, lists.environments_page)
    context = {
        "rows": page.items,
        "page": page,
        "list_id": "environments",
        "list_error": error,
        "anonymous_toggle": True,
        "columns": page.columns(
            ("Name", "name"),
            ("Latest version", ""),
            ("Versions", ""),
            ("Image", ""),
            ("Created", "created"),
            ("Updated", "updated"),
        ),
        "section": "environments",
    }
    return render(request, "environments/environments_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
@requires("environment.create")
def environment_create(request: HttpRequest) -> HttpResponse:
    """Register an environment version from a base image, a conda file or pip requirements."""
    form = EnvironmentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        spec: dict[str, Any] = {"name": data["name"].strip(), "description": data["description"]}
        if data["image"].strip():
            spec["image"] = data["image"].strip()
        if data["conda_file"].strip():
            spec["conda_file"] = data["conda_file"].strip() + "\n"
        if data["pip_requirements"].strip():
            spec["pip_requirements"] = data["pip_requirements"].strip()
        try:
            environment = services.environment_create(spec=spec, user=request.user)
        except ApplicationError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Registered environment {environment.name} version {environment.version}.")
            return redirect(request, reverse("environment", args=[environment.name]))
    status = 400 if form.errors else 200
    context = {"form": form, "section": "environments"}
    return render(request, "environments/environment_create.html", context, status=status)


@login_required
def environment_detail(request: HttpRequest, name: str) -> HttpResponse:
    """An environment's versions, with what each installs and its build log."""
    try:
        rows = selectors.environment_versions(name=name)
    except NotFound as exc:
        raise Http404(exc.message) from None
    for row in rows:
        environment = row["environment"]
        # As typed; environments registered before the text was kept show their parsed form as YAML.
        row["conda"] = environment.conda_text or (
            yaml.safe_dump(environment.conda_file, sort_keys=False) if environment.conda_file else ""
        )
    context = {"name": name, "rows": rows, "section": "environments"}
    return render(request, "environments/environment_detail.html", context)

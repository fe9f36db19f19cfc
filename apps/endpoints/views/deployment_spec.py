"""A deployment's spec: the YAML view and its download, and the Edit flow (review the diff, then roll out)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from apps.accounts.permissions import requires
from apps.core.errors import ApplicationError
from apps.core.htmx import error_status, redirect
from apps.endpoints import selectors, services
from apps.endpoints.forms import DeploymentEditForm
from apps.endpoints.views.common import (
    deployment_or_404,
    endpoint_or_404,
    form_error,
    is_archive,
    tab_context,
    upload_files,
)
from apps.endpoints.yaml import text as yaml_text

# The service's field names (dotted Azure keys) as the edit form calls them.
EDIT_FIELD_MAP = {
    "model": "model",
    "environment": "environment",
    "environment_variables": "environment_variables",
    "instance_type": "instance_type",
    "instance_count": "instance_count",
    "code_configuration.code": "code_files",
    "code_configuration.scoring_script": "scoring_script",
    "scale_settings.type": "scale_type",
    **{f"scale_settings.{key}": f"scale_{key}" for key in DeploymentEditForm.SCALE_KEYS},
    **{f"request_settings.{key}": key for key in DeploymentEditForm.REQUEST_KEYS},
    **{
        f"{probe}.{key}": f"{probe}_{key}"
        for probe in ("liveness_probe", "readiness_probe")
        for key in DeploymentEditForm.PROBE_KEYS
    },
}


def yaml_response(text: str, filename: str) -> HttpResponse:
    """YAML text as a file download."""
    response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_GET
def deployment_spec(request: HttpRequest, name: str, deployment: str) -> HttpResponse:
    """The deployment's spec as YAML, with links to download and to edit it."""
    endpoint = endpoint_or_404(name)
    row = deployment_or_404(endpoint, deployment)
    spec_yaml = selectors.deployment_yaml(row, viewer=request.user)
    hidden = selectors.secrets_hidden(request.user) if row.environment_variables else None
    context = tab_context(request, endpoint, "details", deployment=row, spec_yaml=spec_yaml, hidden=hidden)
    return render(request, "endpoints/deployment_spec.html", context)


@login_required
@require_GET
def deployment_yaml_download(request: HttpRequest, name: str, deployment: str) -> HttpResponse:
    """The deployment's spec as a YAML file (`studio online-deployment update -f` takes it back)."""
    endpoint = endpoint_or_404(name)
    row = deployment_or_404(endpoint, deployment)
    text = selectors.deployment_yaml(row, viewer=request.user)
    return yaml_response(text, f"{endpoint.name}-{row.name}-deployment.yml")


@login_required
@require_GET
def endpoint_yaml_download(request: HttpRequest, name: str) -> HttpResponse:
    """The endpoint as a YAML file (`studio online-endpoint create -f` takes it)."""
    endpoint = endpoint_or_404(name)
    return yaml_response(selectors.endpoint_yaml(endpoint), f"{endpoint.name}-endpoint.yml")


@login_required
@require_http_methods(["GET", "POST"])
@requires(POST="deployment.update")
def deployment_edit(request: HttpRequest, name: str, deployment: str) -> HttpResponse:
    """Edit every updatable field: "Review changes" shows the diff of the YAML, "Apply" starts a rolling update."""
    endpoint = endpoint_or_404(name)
    row = deployment_or_404(endpoint, deployment)
    form = DeploymentEditForm(request.POST or None, request.FILES or None, deployment=row, viewer=request.user)
    diff: list[str] | None = None
    action = request.POST.get("action", "review")
    if request.method == "POST" and form.is_valid():
        try:
            code_ref = form.cleaned_data["code_ref"] or None
            files = [file for file in form.cleaned_data["code_files"] if file]
            if files:
                upload = upload_files(files, folder_name="code", unpack=is_archive(files), user=request.user)
                code_ref = f"upload:{upload.uid}"
                data = request.POST.copy()
                data["code_ref"] = code_ref  # kept for "Apply": a browser does not resend the files
                form.data = data
            changes = form.changes(code_ref)
            if action == "apply":
                with transaction.atomic():
                    updated = services.deployment_update(
                        deployment=row, changes=changes, user=request.user, if_match=form.cleaned_data["version"]
                    )
                if updated.generation == row.generation:
                    messages.info(request, f"Nothing changed in deployment {row.name}.")
                else:
                    messages.success(
                        request,
                        f"Updating deployment {row.name} (generation {updated.generation}): "
                        "new instances start before the old ones stop.",
                    )
                return redirect(request, reverse("endpoint", args=[endpoint.name]))
            before, after = services.deployment_update_preview(
                deployment=row, changes=changes, user=request.user, if_match=form.cleaned_data["version"]
            )
            diff = yaml_text.diff(before, after, name=f"{row.name}.yml")
        except ApplicationError as exc:
            form_error(form, exc, EDIT_FIELD_MAP)
    context = tab_context(request, endpoint, "details", deployment=row, form=form, diff=diff)
    return render(
        request, "endpoints/deployment_edit.html", context, status=error_status(request, 400 if form.errors else 200)
    )

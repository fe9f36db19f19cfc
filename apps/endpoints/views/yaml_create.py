"""Create from YAML in the browser: the endpoint and deployment files the CLI takes, with the files and folders
they name uploaded beside them (folders as archives named after the folder).

Only what the CLI does on the local disk happens here (finding the uploaded file a path names, reading a
conda file); every rule is the services' and the YAML schemas', as for the API and the CLI.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

import yaml as pyyaml
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.accounts.permissions import requires
from apps.core.errors import ApplicationError
from apps.core.htmx import error_status, redirect
from apps.endpoints import services
from apps.endpoints.forms import DeploymentYamlForm, EndpointYamlForm
from apps.endpoints.models import Endpoint
from apps.endpoints.views.common import ARCHIVE_SUFFIXES, endpoint_or_404, tab_context

REMOTE_PREFIXES = ("azureml:", "upload:", "code:")  # as the CLI: names the studio already knows


class YamlError(Exception):
    """A problem with the uploaded YAML or its files, shown on the form field it concerns."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _load(file: UploadedFile, field: str) -> dict[str, Any]:
    label = file.name or "the file"
    try:
        doc = pyyaml.safe_load(file.read().decode("utf-8"))
    except UnicodeDecodeError:
        raise YamlError(field, f"{label}: is not a UTF-8 text file") from None
    except pyyaml.YAMLError as exc:
        raise YamlError(field, f"{label}: is not valid YAML ({' '.join(str(exc).split())})") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise YamlError(field, f"{label}: expected a YAML mapping of keys, got a {type(doc).__name__}")
    return json.loads(json.dumps(doc, default=str))  # dates and other non-JSON scalars as the file says them


class Files:
    """The uploaded files by name; turns the local paths a deployment YAML names into uploads, as the CLI does."""

    def __init__(self, files: list[UploadedFile], *, label: str, user: Any) -> None:
        self.by_name = {PurePosixPath(f.name or "").name: f for f in files or [] if f}
        self.label = label
        self.user = user

    @staticmethod
    def _local(value: Any) -> str | None:
        if not isinstance(value, str) or value.startswith(REMOTE_PREFIXES) or "://" in value:
            return None
        return value

    def _archive(self, name: str) -> UploadedFile | None:
        for suffix in ARCHIVE_SUFFIXES:
            if f"{name}{suffix}" in self.by_name:
                return self.by_name[f"{name}{suffix}"]
        return None

    def path(self, container: dict[str, Any], key: str, where: str, *, folder_only: bool = False) -> None:
        value = self._local(container.get(key))
        if value is None:
            return
        name = PurePosixPath(value.rstrip("/")).name
        archive = self._archive(name)
        single = None if folder_only or value.endswith("/") else self.by_name.get(name)
        if archive is None and single is None:
            wanted = f"{name}.zip or {name}.tar.gz" if folder_only else f"{name} (or {name}.zip for a folder)"
            raise YamlError("files", f"{self.label}: {where}: {value} was not uploaded; add {wanted}")
        if archive is not None:
            archive.seek(0)
            upload = services.upload_create(stream=archive, kind="folder", name=name, user=self.user)
        else:
            assert single is not None
            single.seek(0)
            upload = services.upload_create(stream=single, kind="file", name=name, user=self.user)
        container[key] = f"upload:{upload.uid}"

    def conda_file(self, env: dict[str, Any], where: str) -> None:
        value = self._local(env.get("conda_file"))
        if value is None:
            return
        name = PurePosixPath(value).name
        file = self.by_name.get(name)
        if file is None:
            raise YamlError("files", f"{self.label}: {where}: {value} was not uploaded; add the conda file {name}")
        file.seek(0)
        env["conda_file"] = _load(file, "files")

    def deployment(self, doc: dict[str, Any]) -> None:
        if isinstance(doc.get("code_configuration"), dict):
            self.path(doc["code_configuration"], "code", "code_configuration.code", folder_only=True)
        if isinstance(doc.get("model"), dict):
            self.path(doc["model"], "path", "model.path")
        if isinstance(doc.get("environment"), dict):
            self.conda_file(doc["environment"], "environment.conda_file")


def _create_deployment(endpoint: Endpoint, file: UploadedFile, files: list[UploadedFile], user: Any) -> Any:
    label = file.name or "deployment YAML"
    doc = _load(file, "deployment_file")
    Files(files, label=label, user=user).deployment(doc)
    try:
        return services.deployment_create(endpoint=endpoint, spec=doc, user=user)
    except ApplicationError as exc:
        raise ApplicationError(f"{label}: {exc.message}", field=exc.field) from None


@login_required
@require_http_methods(["GET", "POST"])
@requires(POST="endpoint.create")
def endpoint_create_yaml(request: HttpRequest) -> HttpResponse:
    """Create an endpoint (and its first deployment) from the YAML files `az ml` / `studio` would take."""
    form = EndpointYamlForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        label = data["endpoint_file"].name or "endpoint YAML"
        try:
            with transaction.atomic():
                doc = _load(data["endpoint_file"], "endpoint_file")
                try:
                    endpoint = services.endpoint_create(spec=doc, user=request.user)
                except ApplicationError as exc:
                    raise ApplicationError(f"{label}: {exc.message}", field=exc.field) from None
                deployment = None
                if data["deployment_file"]:
                    deployment = _create_deployment(endpoint, data["deployment_file"], data["files"], request.user)
                    if data["all_traffic"] and not endpoint.local:
                        services.traffic_set(endpoint=endpoint, traffic={deployment.name: 100}, user=request.user)
        except (YamlError, ApplicationError) as exc:
            form.add_error(exc.field if isinstance(exc, YamlError) and exc.field in form.fields else None, exc.message)
        else:
            what = f" with deployment {deployment.name}" if deployment else ""
            messages.success(request, f"Creating endpoint {endpoint.name}{what} from YAML.")
            return redirect(request, reverse("endpoint", args=[endpoint.name]))
    context = {"form": form, "section": "endpoints", "reselect_files": bool(request.FILES) and bool(form.errors)}
    return render(
        request,
        "endpoints/endpoint_create_yaml.html",
        context,
        status=error_status(request, 400 if form.errors else 200),
    )


@login_required
@require_http_methods(["GET", "POST"])
@requires(POST="deployment.create")
def deployment_create_yaml(request: HttpRequest, name: str) -> HttpResponse:
    """Add a deployment to the endpoint from its YAML file (it takes no traffic until you give it some)."""
    endpoint = endpoint_or_404(name)
    form = DeploymentYamlForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                deployment = _create_deployment(
                    endpoint, form.cleaned_data["deployment_file"], form.cleaned_data["files"], request.user
                )
        except (YamlError, ApplicationError) as exc:
            form.add_error(exc.field if isinstance(exc, YamlError) and exc.field in form.fields else None, exc.message)
        else:
            messages.success(
                request, f"Creating deployment {deployment.name} from YAML; it takes no traffic until you give it some."
            )
            return redirect(request, reverse("endpoint", args=[endpoint.name]))
    context = tab_context(request, endpoint, "details", form=form)
    context["reselect_files"] = bool(request.FILES) and bool(form.errors)
    return render(
        request,
        "endpoints/deployment_create_yaml.html",
        context,
        status=error_status(request, 400 if form.errors else 200),
    )

"""The Models pages: the list, registering a version from files or an archive, a model's versions."""

from __future__ import annotations

from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.accounts.permissions import requires
from apps.core.errors import ApplicationError, NotFound
from apps.core.htmx import redirect
from apps.endpoints import lists, selectors, services
from apps.endpoints.forms import ModelRegisterForm
from apps.endpoints.views.common import form_error, is_archive, list_page, upload_files


@login_required
def models_list(request: HttpRequest) -> HttpResponse:
    """Model names with their latest version and how many versions: searched, filtered, sorted and paged."""
    page, error = list_page(request, lists.ASSET_SORTS, lists.models_page)
    context = {
        "rows": page.items,
        "page": page,
        "list_id": "models",
        "list_error": error,
        "anonymous_toggle": True,
        "columns": page.columns(
            ("Name", "name"),
            ("Latest version", ""),
            ("Versions", ""),
            ("Type", ""),
            ("Created", "created"),
            ("Updated", "updated"),
        ),
        "section": "models",
    }
    return render(request, "models/models_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
@requires("model.create")
def model_register(request: HttpRequest) -> HttpResponse:
    """Register a model version from a file, several files or an archive."""
    form = ModelRegisterForm(request.POST or None, request.FILES or None, initial=request.GET.dict())
    if request.method == "POST" and form.is_valid():
        files = form.cleaned_data["files"]
        unpack = form.cleaned_data["unpack"] or False
        if unpack and len(files) != 1:
            form.add_error("unpack", f"unpack needs exactly one archive, got {len(files)} files")
        elif unpack and not is_archive(files):
            form.add_error("unpack", f"{files[0].name!r} is not a .zip, .tar, .tar.gz or .tgz archive")
        else:
            try:
                with transaction.atomic():
                    name = form.cleaned_data["name"].strip()
                    single = len(files) == 1 and not unpack
                    upload = upload_files(
                        files,
                        folder_name="" if single else Path(name).name or "model",
                        unpack=unpack,
                        user=request.user,
                    )
                    model = services.model_create(
                        spec={
                            "name": name,
                            "path": f"upload:{upload.uid}",
                            "type": form.cleaned_data["type"],
                            "description": form.cleaned_data["description"],
                        },
                        user=request.user,
                    )
            except ApplicationError as exc:
                form_error(form, exc, {"path": "files"})
            else:
                messages.success(request, f"Registered model {model.name} version {model.version}.")
                return redirect(request, reverse("model", args=[model.name]))
    status = 400 if form.errors else 200
    return render(request, "models/model_register.html", {"form": form, "section": "models"}, status=status)


@login_required
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    """A model's versions, each with its files and the deployments that use it."""
    try:
        rows = selectors.model_versions(name=name)
    except NotFound as exc:
        raise Http404(exc.message) from None
    return render(request, "models/model_detail.html", {"name": name, "rows": rows, "section": "models"})

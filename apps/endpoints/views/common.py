"""What the endpoint pages share: look-ups that become 404s, a service's error on its form field, the
endpoint's tabs (the Monitoring and Costs tabs of apps/monitoring and apps/costs use them too), and
uploads from form files.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import Http404, HttpRequest
from django.urls import reverse

from apps.core.errors import ApplicationError, NotFound
from apps.endpoints import lists, selectors, services
from apps.endpoints.models import Deployment, Endpoint, Upload

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
TABS = (
    ("details", "Details"),
    ("traffic", "Traffic"),
    ("test", "Test"),
    ("consume", "Consume"),
    ("monitoring", "Monitoring"),
    ("logs", "Logs"),
    ("events", "Events"),
    ("costs", "Costs"),
    ("audit", "Audit"),
)
# The tabs a Reader may not open (the whole page needs more): shown disabled with the role they need.
TAB_ACTIONS = {"logs": "logs.read"}


def endpoint_or_404(name: str) -> Endpoint:
    try:
        return selectors.endpoint_get(name=name)
    except NotFound as exc:
        raise Http404(exc.message) from None


def deployment_or_404(endpoint: Endpoint, name: str) -> Deployment:
    try:
        return selectors.deployment_get(endpoint=endpoint, name=name)
    except NotFound as exc:
        raise Http404(exc.message) from None


def form_error(form: Any, exc: ApplicationError, field_map: dict[str, str] | None = None) -> None:
    """Show a service's error beside the field it names, else at the top of the form."""
    field = (field_map or {}).get(exc.field or "", exc.field)
    if field and field in form.fields:
        form.add_error(field, exc.message)
    else:
        form.add_error(None, exc.message)


def tab_context(request: HttpRequest, endpoint: Endpoint, tab: str, **extra: Any) -> dict[str, Any]:
    """What every tab of an endpoint's page draws: the endpoint, its deployments and the tab bar."""
    deployments = selectors.endpoint_deployments(endpoint=endpoint)
    return {
        "endpoint": endpoint,
        "deployments": deployments,
        "serving": selectors.serving_now(endpoint=endpoint, deployments=deployments),
        "tabs": [
            (
                key,
                label,
                reverse(f"endpoint-{key}" if key != "details" else "endpoint", args=[endpoint.name]),
                TAB_ACTIONS.get(key, "read"),
            )
            for key, label in TABS
        ],
        "tab": tab,
        "section": "endpoints",
        "currency": settings.STUDIO_CURRENCY,
        **extra,
    }


def upload_files(files: list[UploadedFile], *, folder_name: str, unpack: bool, user: Any) -> Upload:
    """Files from a form as one upload: an archive unpacked, one file as is, several files zipped into a folder."""
    if len(files) == 1 and unpack:
        return services.upload_create(stream=files[0], kind="folder", name=folder_name, user=user)
    if len(files) == 1 and folder_name == "":
        return services.upload_create(stream=files[0], kind="file", name=files[0].name or "file", user=user)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for item in files:
            archive.writestr(Path(item.name or "file").name, item.read())
    buffer.seek(0)
    return services.upload_create(stream=buffer, kind="folder", name=folder_name or "model", user=user)


def is_archive(files: list[UploadedFile]) -> bool:
    return len(files) == 1 and (files[0].name or "").lower().endswith(ARCHIVE_SUFFIXES)


def list_page(
    request: HttpRequest, sorts: Mapping[str, str], read: Callable[[lists.ListQuery], lists.Page[Any]]
) -> tuple[lists.Page[Any], str]:
    """A list page's rows for the request's search, filters, sort and page; a bad parameter is shown, not raised."""
    try:
        return read(lists.list_query(request.GET, sorts=sorts)), ""
    except ApplicationError as exc:
        return read(lists.ListQuery()), exc.message

"""The Logs tab: deployment, instance, container, lines, search, download; following live is the
logs websocket's (apps/endpoints/consumers.py)."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from apps.accounts.permissions import requires
from apps.core.errors import ApplicationError
from apps.core.htmx import render_page_or_fragment
from apps.endpoints import selectors
from apps.endpoints.backends.base import Container
from apps.endpoints.forms import LogsForm
from apps.endpoints.logs import deployment_logs
from apps.endpoints.views.common import deployment_or_404, endpoint_or_404, tab_context


@login_required
@requires("logs.read")
def endpoint_logs(request: HttpRequest, name: str) -> HttpResponse:
    """The Logs tab: deployment, instance, container, lines, search, follow and download."""
    endpoint = endpoint_or_404(name)
    names = [d.name for d in selectors.deployments_list(endpoint=endpoint)]
    data = request.GET.copy()
    data.setdefault("container", "inference-server")
    data.setdefault("lines", "100")
    if names:
        data.setdefault("deployment", names[0])
    form = LogsForm(data, deployments=names)
    content: str | None = None
    error: str | None = None
    instances: list[str] = []
    if names and form.is_valid():
        row = deployment_or_404(endpoint, form.cleaned_data["deployment"])
        instances = selectors.instance_names(deployment=row)
        try:
            content = deployment_logs(
                deployment=row,
                container=cast(Container, form.cleaned_data["container"]),  # a choice of the form
                lines=form.cleaned_data["lines"],
                instance=form.cleaned_data["instance"] or None,
            )
        except ApplicationError as exc:
            error = exc.message
        if content is not None and request.GET.get("download"):
            response = HttpResponse(content, content_type="text/plain; charset=utf-8")
            filename = f"{endpoint.name}-{row.name}-{form.cleaned_data['container']}.log"
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
    search = form.cleaned_data.get("search", "") if form.is_bound and form.is_valid() else ""
    shown = content
    if content and search:
        shown = "\n".join(line for line in content.splitlines() if search.lower() in line.lower())
    context = tab_context(
        request, endpoint, "logs", form=form, content=shown, error=error, instances=instances, search=search
    )
    return render_page_or_fragment(request, "endpoints/endpoint_logs.html", "endpoints/partials/_logs.html", context)

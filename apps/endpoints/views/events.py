"""The Events tab: every deployment's timeline and the traffic changes, newest first."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from apps.core.htmx import render_page_or_fragment
from apps.endpoints import selectors
from apps.endpoints.views.common import endpoint_or_404, tab_context


@login_required
def endpoint_events(request: HttpRequest, name: str) -> HttpResponse:
    """The Events tab: every deployment's timeline, newest first, or one deployment's."""
    endpoint = endpoint_or_404(name)
    context = tab_context(request, endpoint, "events")
    chosen = request.GET.get("deployment", "")
    context.update(
        {
            "events": selectors.endpoint_timeline(deployments=context["deployments"], only=chosen),
            "chosen": chosen,
            "changes": list(selectors.traffic_changes(endpoint=endpoint)[:50]) if not chosen else [],
        }
    )
    return render_page_or_fragment(
        request, "endpoints/endpoint_events.html", "endpoints/partials/_events.html", context
    )

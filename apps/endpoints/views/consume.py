"""The Consume tab: scoring and swagger URIs, keys shown on request, tokens, samples."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from apps.accounts.permissions import requires
from apps.accounts.roles import check
from apps.core.errors import ApplicationError
from apps.core.htmx import error_status
from apps.endpoints import services
from apps.endpoints.views.common import endpoint_or_404, tab_context


@login_required
def endpoint_consume(request: HttpRequest, name: str) -> HttpResponse:
    """The Consume tab: scoring and swagger URIs, keys (hidden until shown), samples."""
    endpoint = endpoint_or_404(name)
    return render(request, "endpoints/endpoint_consume.html", tab_context(request, endpoint, "consume"))


@login_required
@require_POST
@requires("keys.read")
def endpoint_keys(request: HttpRequest, name: str) -> HttpResponse:
    """The endpoint's keys, shown on request (never part of the page until asked for)."""
    endpoint = endpoint_or_404(name)
    if request.POST.get("regenerate"):
        try:
            check(request.user, "keys.regenerate")
            endpoint = services.keys_regenerate(endpoint=endpoint, key_type=request.POST["regenerate"])
        except ApplicationError as exc:
            return render(
                request,
                "endpoints/partials/_keys.html",
                {"endpoint": endpoint, "error": exc.message},
                status=error_status(request, 400),
            )
        context = {"endpoint": endpoint, "shown": True, "regenerated": request.POST["regenerate"]}
        return render(request, "endpoints/partials/_keys.html", context)
    hide = request.POST.get("hide") == "1"
    return render(request, "endpoints/partials/_keys.html", {"endpoint": endpoint, "shown": not hide})


@login_required
@require_POST
@requires("token.issue")
def endpoint_token(request: HttpRequest, name: str) -> HttpResponse:
    """A fresh bearer token for an aml_token endpoint."""
    endpoint = endpoint_or_404(name)
    try:
        token = services.token_issue(endpoint=endpoint)
    except ApplicationError as exc:
        return render(
            request,
            "endpoints/partials/_token.html",
            {"endpoint": endpoint, "error": exc.message},
            status=error_status(request, 400),
        )
    return render(request, "endpoints/partials/_token.html", {"endpoint": endpoint, "token": token})

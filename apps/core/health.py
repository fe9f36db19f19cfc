"""Liveness of the studio's web process, for `studio up` and Kubernetes probes (no login, no database)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def healthz(request: HttpRequest) -> HttpResponse:
    """200 once the web process serves requests."""
    return HttpResponse("ok", content_type="text/plain")

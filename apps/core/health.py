"""Health of the studio for `studio up`, `studio status`, probes and the pages' banner (no login, no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.core.heartbeat import health_report, not_reconciled_since


def livez(request: HttpRequest) -> HttpResponse:
    """200 once the web process serves requests (a liveness probe: it never depends on other parts)."""
    return HttpResponse("ok", content_type="text/plain")


def healthz(request: HttpRequest) -> JsonResponse:
    """Each part with the age of its heartbeat; 503 when deployments are not being reconciled."""
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)


def reconciler_banner(request: HttpRequest) -> dict[str, Any]:
    """Template context: `not_reconciled_since` ("HH:MM" UTC) when the reconciler is stale, for signed-in users."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    since = not_reconciled_since()
    if since is None:
        return {}
    return {"not_reconciled_since": datetime.fromtimestamp(since, UTC).strftime("%H:%M")}

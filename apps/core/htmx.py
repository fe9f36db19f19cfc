"""htmx helpers: one view serves the whole page or, for an htmx request, just its fragment."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def is_htmx(request: HttpRequest) -> bool:
    """True for a request sent by htmx (and not a history restore, which needs the full page)."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def error_status(request: HttpRequest, status: int) -> int:
    """The status of a form shown again with its errors: 200 for htmx, which swaps only 2xx answers
    (and the browser logs every 4xx of a fetch as a console error), the real 4xx for a plain POST."""
    return 200 if is_htmx(request) else status


def render_page_or_fragment(
    request: HttpRequest, page: str, fragment: str, context: dict[str, Any], *, status: int = 200
) -> HttpResponse:
    """The fragment template for htmx, else the page that includes it."""
    return render(request, fragment if is_htmx(request) else page, context, status=error_status(request, status))


def redirect(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect that htmx follows with a full page load (HX-Redirect) and a browser follows with 303."""
    if is_htmx(request):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    response = HttpResponse(status=303)
    response["Location"] = url
    return response

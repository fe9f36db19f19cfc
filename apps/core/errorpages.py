"""Django's error views, answering the API's JSON error shape under /api/ and the usual pages elsewhere.

Errors raised before DRF sees a request (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too many form fields,
an unknown URL, an unhandled exception) reach these views; under /api/ a client gets
`{"error": {"code", "message", "field"}}` like every other API error, never an HTML page.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def api_error(code: str, message: str, status: int) -> JsonResponse:
    """The API's error body."""
    return JsonResponse({"error": {"code": code, "message": message, "field": None}}, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = (
            f"the request body is larger than {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE); "
            "send files as multipart uploads"
        )
        return api_error("RequestTooLarge", message, 400)
    if isinstance(exception, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return api_error("TooManyFields", f"the request has more than {limit} form fields", 400)
    return api_error("BadRequest", str(exception) or "bad request", 400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api(request):
        # The page says what was refused (the message names the role it needs: apps/accounts/permissions.py).
        message = str(exception) or "You may not do this."
        return render(request, "403.html", {"message": message}, status=403)
    return api_error("PermissionDenied", str(exception) or "permission denied", 403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api(request):
        return defaults.page_not_found(request, exception)
    return api_error("NotFound", f"no API resource at {request.path[:200]}", 404)


def server_error(request: HttpRequest) -> HttpResponse:
    if not is_api(request):
        return defaults.server_error(request)
    return api_error("ServerError", "the studio failed to handle this request; its log has the details", 500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A CSRF refusal: the API's JSON 403 under /api/, Django's page elsewhere."""
    if not is_api(request):
        return django_csrf_failure(request, reason)
    return api_error("CSRFFailed", f"CSRF check failed: {reason}", 403)

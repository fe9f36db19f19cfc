"""API helpers: one error shape for every failure, `{"error": {"code", "message", "field"}}`."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.errors import ApplicationError


def _first_message(detail: Any, prefix: str = "") -> tuple[str, str | None]:
    """Flatten DRF's nested error detail into one sentence naming the field."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if not prefix else f"{prefix}.{key}"
            message, field = _first_message(value, "" if key == "non_field_errors" else name)
            return message, field
    if isinstance(detail, list) and detail:
        return _first_message(detail[0], prefix)
    text = str(detail)
    return (f"{prefix}: {text}" if prefix else text), (prefix or None)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Turn ApplicationError and DRF errors into the studio's error body."""
    if isinstance(exc, ApplicationError):
        body = {"error": {"code": type(exc).__name__, "message": exc.message, "field": exc.field}}
        return Response(body, status=exc.status)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        message, field = _first_message(exc.detail)
        code = "ValidationError"
    else:
        message, field = _first_message(getattr(exc, "detail", str(exc)))
        code = type(exc).__name__
    response.data = {"error": {"code": code, "message": message, "field": field}}
    if isinstance(exc, exceptions.PermissionDenied) and message.startswith("CSRF Failed"):
        response.data["error"]["code"] = "CSRFFailed"  # a signed-in session without the token: 403, not 401
    elif response.status_code == status.HTTP_403_FORBIDDEN and not context["request"].user.is_authenticated:
        response.status_code = status.HTTP_401_UNAUTHORIZED
    return response

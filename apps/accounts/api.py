"""REST API of accounts: `studio login`'s token exchange, your tokens, the audit trail (and its JSON lines)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import authenticate
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts import selectors, services
from apps.accounts.models import Channel
from apps.accounts.roles import role_of
from apps.core.errors import ApplicationError


def _token_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.pk,
        "name": row.name,
        "prefix": row.prefix,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
        "revoked": row.revoked_at is not None,
    }


@extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
@api_view(["POST"])
@authentication_classes([])
@permission_classes([AllowAny])
def login(request: Request) -> Response:
    """Exchange a username and password for a new personal API token (what `studio login` stores)."""
    body = request.data if isinstance(request.data, dict) else {}
    username, password = str(body.get("username") or ""), str(body.get("password") or "")
    if not username or not password:
        raise ApplicationError("username and password: both required", field="username" if not username else "password")
    user = authenticate(request._request, username=username, password=password)
    if getattr(request._request, "axes_locked_out", False):
        raise ApplicationError(
            f"too many failed sign-ins for {username!r} from this address; try again later", status=429
        )
    if user is None:
        raise ApplicationError("wrong username or password, or the user is disabled", status=401)
    expires = body.get("expires_in_days")
    row, key = services.token_create(
        user=user,
        name=str(body.get("name") or "studio login"),
        expires_in_days=None if expires in (None, "") else expires,
    )
    role = role_of(user)
    body = {**_token_view(row), "token": key, "user": user.get_username(), "role": role.label if role else None}
    return Response(body, status=status.HTTP_201_CREATED)


@api_view(["GET"])
def me(request: Request) -> Response:
    """Who the token belongs to and their role."""
    role = role_of(request.user)
    return Response({"user": request.user.get_username(), "role": role.label if role else None})


@api_view(["GET"])
def tokens(request: Request) -> Response:
    """Your personal API tokens (never the tokens themselves)."""
    return Response([_token_view(row) for row in selectors.tokens_of(user=request.user)])


@api_view(["DELETE"])
def token_detail(request: Request, token_id: int) -> Response:
    """Revoke one of your tokens."""
    services.token_revoke(user=request.user, token_id=token_id)
    return Response(status=status.HTTP_204_NO_CONTENT)


def _time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        raise ApplicationError(f"{name}: expected an ISO 8601 time, got {raw!r}", field=name) from None


def _filters(request: Request) -> dict[str, Any]:
    channel = request.query_params.get("channel") or None
    if channel is not None and channel not in Channel.values:
        expected = ", ".join(Channel.values)
        raise ApplicationError(f"channel: expected one of {expected}, got {channel!r}", field="channel")
    return {
        "endpoint": request.query_params.get("endpoint") or None,
        "user": request.query_params.get("user") or None,
        "action": request.query_params.get("action") or None,
        "channel": channel,
        "since": _time(request, "since"),
        "until": _time(request, "until"),
    }


@api_view(["GET"])
def audit(request: Request) -> Response:
    """The audit trail, newest first; filters: endpoint, user, action (prefix), channel, since, until."""
    paginator = LimitOffsetPagination()
    page = paginator.paginate_queryset(selectors.audit_entries(**_filters(request)), request)
    return paginator.get_paginated_response([selectors.audit_view(row) for row in page or []])


@extend_schema(responses={(200, "application/x-ndjson"): OpenApiTypes.STR})
@api_view(["GET"])
def audit_export(request: Request) -> StreamingHttpResponse:
    """The audit trail as JSON lines, oldest first, with the same filters."""
    rows = selectors.audit_entries(**_filters(request))
    response = StreamingHttpResponse(selectors.audit_jsonl(rows), content_type="application/x-ndjson")
    response["Content-Disposition"] = 'attachment; filename="studio-audit.jsonl"'
    return response

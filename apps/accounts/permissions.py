"""The adapters that enforce `roles.ACTIONS` on pages, API views and websockets: one decorator, one check.

    @login_required
    @requires(POST="traffic.set")        # a page: GET needs "read"; a refusal is the 403 page naming the role
    def endpoint_traffic(request, name): ...

    @api_view(["GET", "POST"])
    @requires(POST="model.create")       # an API view (below @api_view): a 403 in the API's JSON error shape
    def models(request): ...

The CLI calls the API with its user's token, so the API's rule is the CLI's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from apps.accounts.roles import ACTIONS, RoleRequired, allowed, needs, role_of
from apps.core.logfilters import mark_logged

View = TypeVar("View", bound=Callable[..., Any])
logger = logging.getLogger(__name__)

# Websocket close codes (the browser's script does not reconnect on these).
SOCKET_UNAUTHORIZED = 4401
SOCKET_FORBIDDEN = 4403


def requires(action: str | None = None, /, **methods: str) -> Callable[[View], View]:
    """The action a view performs, per HTTP method; methods not named need `action`, else "read"."""
    for name in [action, *methods.values()]:
        if name is not None and name not in ACTIONS:
            raise KeyError(f"unknown action {name!r}: add it to apps/accounts/roles.py's ACTIONS")

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(request: Any, *args: Any, **kwargs: Any) -> Any:
            enforce(request, methods.get(request.method) or action or "read")
            return view(request, *args, **kwargs)

        wrapped.studio_actions = {"*": action or "read", **methods}  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate


def enforce(request: Any, action: str) -> None:
    """Refuse the request unless its user's role includes the action: the API's 403, or the page's."""
    if allowed(request.user, action):
        return
    error = RoleRequired(action, role_of(request.user))
    log_refusal(request, error)
    if isinstance(request, Request):
        raise error
    raise PermissionDenied(error.message)


def log_refusal(request: Any, error: RoleRequired) -> None:
    """One line per refusal (expected, so no traceback): method, path, user and the role the action needs."""
    user = getattr(request, "user", None)
    name = user.get_username() if user is not None and user.is_authenticated else "anonymous"
    logger.warning("refused %s %s to %s: %s", request.method, request.path, name, error.message)
    mark_logged(request)


class HasRole(BasePermission):
    """The API's default: a signed-in user with a role (any role may read); actions are checked by `requires`."""

    message = RoleRequired("read", None).message

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and role_of(request.user) is not None)


# Pages a signed-in user without a role may still open.
NO_ROLE_PATHS = ("/logout/", "/login/", "/static/", "/healthz", "/api/", "/favicon.ico")


class RoleMiddleware:
    """Pages: a signed-in user with no role (given none, or not yet) sees the 403 page naming Reader."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and role_of(user) is None
            and not request.path.startswith(NO_ROLE_PATHS)
        ):
            error = RoleRequired("read", None)
            log_refusal(request, error)
            return render(request, "403.html", {"message": error.message}, status=403)
        return self.get_response(request)


def socket_refusal(user: Any, action: str = "read") -> tuple[int, str] | None:
    """Why a websocket must be closed (code, reason naming the role), or None when the user may join."""
    if user is None or not user.is_authenticated:
        return SOCKET_UNAUTHORIZED, "sign in first"
    if not allowed(user, action):
        role = role_of(user)
        return SOCKET_FORBIDDEN, RoleRequired(action if role else "read", role).message
    return None


def control_refusal(user: Any, action: str) -> tuple[str, str] | None:
    """Why a page's control for `action` is disabled for this user: (the role it needs, a title such as
    "needs Operator (you are Reader)"), or None when the user may use it. Read from `roles.ACTIONS`, as the
    server's check is, so a control and the request it sends are refused alike."""
    if allowed(user, action):
        return None
    needed = needs(action).label
    role = role_of(user)
    return str(needed), f"needs {needed} (you are {role.label if role else 'without a role'})"


def roles_context(request: Any) -> dict[str, Any]:
    """Context processor: the user's role, for the header (controls ask `{% gate %}`, templatetags/roles.py)."""
    role = role_of(getattr(request, "user", None))
    return {"studio_role": role.label if role else ""}

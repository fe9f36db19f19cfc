"""Pages about people: your API tokens, users and invitations (Admin), the invitation link, the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts import selectors, services
from apps.accounts.models import Channel, Role
from apps.accounts.permissions import allowed, requires
from apps.core.errors import ApplicationError
from apps.core.htmx import redirect
from apps.endpoints.views.common import endpoint_or_404, tab_context


def _int_or_none(raw: str) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ApplicationError(f"expires_in_days: a whole number of days, got {raw!r}", field="expires_in_days")
    return int(raw)


@login_required
@require_http_methods(["GET", "POST"])
def tokens_page(request: HttpRequest) -> HttpResponse:
    """Your personal API tokens: make one (shown once), see when each was used, revoke."""
    context: dict[str, Any] = {"section": "account"}
    status = 200
    if request.method == "POST":
        try:
            row, key = services.token_create(
                user=request.user,
                name=request.POST.get("name", ""),
                expires_in_days=_int_or_none(request.POST.get("expires_in_days", "")),
            )
        except ApplicationError as exc:
            context["error"] = exc.message
            status = 400
        else:
            context["new_token"] = key
            context["new_token_name"] = row.name
    context["tokens"] = selectors.tokens_of(user=request.user)
    return render(request, "accounts/tokens.html", context, status=status)


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    """Revoke one of your tokens."""
    try:
        row = services.token_revoke(user=request.user, token_id=token_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Token {row.name} revoked.")
    return redirect(request, reverse("account-tokens"))


@login_required
@requires(POST="users.manage")
@require_http_methods(["GET", "POST"])
def users_page(request: HttpRequest) -> HttpResponse:
    """Users and their roles (any role may look, as Azure's Reader reads role assignments); an Admin invites
    someone with a one-time link, changes roles, disables or enables users, and alone sees the open
    invitations (their notes may name people who have not joined)."""
    context: dict[str, Any] = {"section": "users", "roles": Role.choices}
    status = 200
    if request.method == "POST":
        try:
            row, secret = services.invitation_create(
                role=request.POST.get("role", ""), note=request.POST.get("note", "")
            )
        except ApplicationError as exc:
            context["error"] = exc.message
            status = 400
        else:
            context["invite_link"] = request.build_absolute_uri(reverse("invite-accept", args=[secret]))
            context["invite_role"] = Role(row.role).label
    context["users"] = selectors.users_list()
    if allowed(request.user, "users.manage"):
        context["invitations"] = selectors.invitations_open()
    return render(request, "accounts/users.html", context, status=status)


@login_required
@requires("users.manage")
@require_POST
def user_change(request: HttpRequest, username: str) -> HttpResponse:
    """Change a user's role, or disable / enable them."""
    try:
        if "role" in request.POST:
            services.role_set(username=username, role=request.POST["role"])
            messages.success(request, f"{username} is now {Role(request.POST['role']).label}.")
        elif "active" in request.POST:
            active = request.POST["active"] == "1"
            services.user_set_active(username=username, active=active)
            messages.success(request, f"{username} {'enabled' if active else 'disabled'}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(request, reverse("users"))


@require_http_methods(["GET", "POST"])
def invite_accept(request: HttpRequest, secret: str) -> HttpResponse:
    """The one-time invitation link: choose a username and password, then sign in."""
    context: dict[str, Any] = {}
    try:
        invitation = services.invitation_get(secret=secret)
    except ApplicationError as exc:
        return render(request, "accounts/invite.html", {"invalid": exc.message}, status=exc.status)
    context["role"] = Role(invitation.role).label
    if request.method == "POST":
        username = request.POST.get("username", "")
        context["username"] = username
        if request.POST.get("password", "") != request.POST.get("password2", ""):
            context["error"] = "password: the two passwords differ"
        else:
            try:
                services.invitation_accept(secret=secret, username=username, password=request.POST.get("password", ""))
            except ApplicationError as exc:
                context["error"] = exc.message
            else:
                messages.success(request, f"Welcome, {username}. Sign in with your new password.")
                return redirect(request, reverse("login"))
        return render(request, "accounts/invite.html", context, status=400)
    return render(request, "accounts/invite.html", context)


def _audit_filters(request: HttpRequest) -> dict[str, Any]:
    query = request.GET
    filters: dict[str, Any] = {key: query.get(key, "").strip() or None for key in ("endpoint", "user", "action")}
    channel = query.get("channel", "").strip()
    filters["channel"] = channel if channel in Channel.values else None
    for key in ("since", "until"):
        raw = query.get(key, "").strip()
        try:
            filters[key] = datetime.fromisoformat(raw) if raw else None
        except ValueError:
            filters[key] = None
    return filters


def _audit_context(request: HttpRequest, filters: dict[str, Any]) -> dict[str, Any]:
    page = Paginator(selectors.audit_entries(**filters), 100).get_page(request.GET.get("page"))
    shown = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in filters.items() if v}
    query = urlencode(shown)
    return {"page": page, "filters": shown, "channels": Channel.choices, "query": query}


@login_required
@require_GET
def audit_page(request: HttpRequest) -> HttpResponse:
    """The studio-wide audit trail, filterable by endpoint, user, action, channel and time."""
    context = _audit_context(request, _audit_filters(request))
    context["section"] = "audit"
    return render(request, "accounts/audit.html", context)


@login_required
@require_GET
def endpoint_audit(request: HttpRequest, name: str) -> HttpResponse:
    """An endpoint's Audit tab: every change to it and its deployments."""
    endpoint = endpoint_or_404(name)
    filters = {**_audit_filters(request), "endpoint": endpoint.name}
    context = tab_context(request, endpoint, "audit", **_audit_context(request, filters))
    return render(request, "accounts/endpoint_audit.html", context)


@login_required
@require_GET
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    """The audit trail (with the page's filters) as JSON lines."""
    rows = selectors.audit_entries(**_audit_filters(request))
    response = StreamingHttpResponse(selectors.audit_jsonl(rows), content_type="application/x-ndjson")
    response["Content-Disposition"] = 'attachment; filename="studio-audit.jsonl"'
    return response


def locked_out(request: HttpRequest, response: HttpResponse | None, credentials: Any) -> HttpResponse:
    """What django-axes answers while an account is locked from an address: the API's JSON error, or a page."""
    message = "too many failed sign-ins for this user from this address; try again later"
    if request.path.startswith("/api/"):
        body = {"error": {"code": "TooManySignIns", "message": message, "field": None}}
        return JsonResponse(body, status=429)
    return render(request, "registration/locked_out.html", status=429)

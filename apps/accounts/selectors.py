"""Reads about people and the audit trail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from apps.accounts.models import AuditEntry, Invitation, PersonalToken
from apps.accounts.roles import role_of


def users_list() -> list[dict[str, Any]]:
    """Every user with their role and whether they may sign in."""
    rows = get_user_model().objects.order_by("username")
    return [
        {"username": u.get_username(), "role": role_of(u) if u.is_active else None, "active": u.is_active, "user": u}
        for u in rows
    ]


def role_value(user: Any) -> str | None:
    """The user's role as stored (what a disabled user would get back when enabled)."""
    membership = getattr(user, "membership", None)
    return "admin" if user.is_superuser else (membership.role if membership else None)


def invitations_open() -> QuerySet[Invitation]:
    return Invitation.objects.filter(used_at__isnull=True).select_related("created_by")


def tokens_of(*, user: Any) -> QuerySet[PersonalToken]:
    return PersonalToken.objects.filter(user=user)


def audit_entries(
    *,
    endpoint: str | None = None,
    user: str | None = None,
    action: str | None = None,
    channel: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEntry]:
    """The audit trail, newest first, filtered by what is given."""
    rows = AuditEntry.objects.select_related("user")
    if endpoint:
        rows = rows.filter(endpoint=endpoint)
    if user:
        rows = rows.filter(username=user)
    if action:
        rows = rows.filter(action__startswith=action)
    if channel:
        rows = rows.filter(channel=channel)
    if since:
        rows = rows.filter(created_at__gte=since)
    if until:
        rows = rows.filter(created_at__lt=until)
    return rows


def audit_view(entry: AuditEntry) -> dict[str, Any]:
    """One entry as the API and the JSON lines export show it."""
    return {
        "id": entry.pk,
        "time": entry.created_at.isoformat(),
        "user": entry.username or None,
        "channel": entry.channel,
        "address": entry.address or None,
        "action": entry.action,
        "endpoint": entry.endpoint or None,
        "target": entry.target,
        "before": entry.before,
        "after": entry.after,
    }


def audit_jsonl(rows: QuerySet[AuditEntry]) -> Iterator[str]:
    """The entries as JSON lines, oldest first, read in chunks."""
    for entry in rows.order_by("created_at", "id").iterator(chunk_size=500):
        yield json.dumps(audit_view(entry), sort_keys=True) + "\n"


def traffic_changes(*, endpoint: str, since: datetime) -> QuerySet[AuditEntry]:
    """An endpoint's traffic history: its `traffic.set` entries since it was created, newest first."""
    return AuditEntry.objects.select_related("user").filter(
        endpoint=endpoint, action="traffic.set", created_at__gte=since
    )

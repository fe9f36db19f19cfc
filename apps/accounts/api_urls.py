"""Routes of the accounts API under /api/v1/."""

from __future__ import annotations

from django.urls import path

from apps.accounts import api

urlpatterns = [
    path("auth/login", api.login, name="api-login"),
    path("auth/me", api.me, name="api-me"),
    path("auth/tokens", api.tokens, name="api-tokens"),
    path("auth/tokens/<int:token_id>", api.token_detail, name="api-token"),
    path("audit", api.audit, name="api-audit"),
    path("audit/export", api.audit_export, name="api-audit-export"),
]

"""Routes of the account, users, invitation and audit pages."""

from __future__ import annotations

from django.urls import path

from apps.accounts import views

urlpatterns = [
    path("account/tokens/", views.tokens_page, name="account-tokens"),
    path("account/tokens/<int:token_id>/revoke/", views.token_revoke, name="account-token-revoke"),
    path("users/", views.users_page, name="users"),
    path("users/<str:username>/", views.user_change, name="user-change"),
    path("invite/<str:secret>/", views.invite_accept, name="invite-accept"),
    path("audit/", views.audit_page, name="audit"),
    path("audit/export.jsonl", views.audit_export, name="audit-export"),
    path("endpoints/<str:name>/audit/", views.endpoint_audit, name="endpoint-audit"),
]

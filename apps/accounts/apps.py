from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Who may do what (roles), personal API tokens, invitations, and the audit trail of every change."""

    name = "apps.accounts"
    label = "accounts"

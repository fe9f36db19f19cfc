"""Roles, personal API tokens, invitations and the audit trail."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    """A user's role in the studio; each includes the ones before it."""

    READER = "reader", "Reader"
    OPERATOR = "operator", "Operator"
    DEPLOYER = "deployer", "Deployer"
    ADMIN = "admin", "Admin"


class Membership(models.Model):
    """A user's role in the studio (a superuser is an Admin whatever this says)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.READER)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user} {self.role}"


class PersonalToken(models.Model):
    """A user's named API token for the CLI or CI; only its SHA-256 is kept, the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personal_tokens")
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)  # the first characters, so a user can tell tokens apart
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user} {self.name}"


class Invitation(models.Model):
    """A one-time link that lets someone create an account with a role; only its SHA-256 is kept."""

    digest = models.CharField(max_length=64, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices)
    note = models.CharField(max_length=200, blank=True)  # whom it is for, as the Admin wrote it
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"invitation {self.role} {self.note}"


class Channel(models.TextChoices):
    """Where a change came from."""

    UI = "ui", "UI"
    API = "api", "API"
    CLI = "cli", "CLI"
    SYSTEM = "system", "System"


class AuditEntry(models.Model):
    """One change: who, when, what, from what to what, from which address and through which channel."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    username = models.CharField(max_length=150, blank=True)  # kept when the user is deleted
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.SYSTEM)
    address = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=64)
    endpoint = models.CharField(max_length=64, blank=True)
    target = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["endpoint", "action", "created_at"]), models.Index(fields=["action"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.target}"

    # The traffic history is a view of the audit trail: these read a `traffic.set` entry like the old rows.
    def _part(self, side: Any, key: str) -> dict[str, int]:
        return dict((side or {}).get(key) or {})

    @property
    def traffic_before(self) -> dict[str, int]:
        return self._part(self.before, "traffic")

    @property
    def traffic_after(self) -> dict[str, int]:
        return self._part(self.after, "traffic")

    @property
    def mirror_before(self) -> dict[str, int]:
        return self._part(self.before, "mirror_traffic")

    @property
    def mirror_after(self) -> dict[str, int]:
        return self._part(self.after, "mirror_traffic")

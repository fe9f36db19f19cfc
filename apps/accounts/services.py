"""Writes about people: roles, invitations, disabling, personal tokens. Each is recorded in the audit trail."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts import audit, tokens
from apps.accounts.models import Invitation, Membership, PersonalToken, Role
from apps.accounts.roles import role_of
from apps.core.errors import ApplicationError, Conflict, NotFound

INVITATION_LIFETIME = timedelta(days=7)
MAX_TOKEN_DAYS = 3650


def _role(value: str) -> Role:
    try:
        return Role(str(value).lower())
    except ValueError:
        names = ", ".join(r.label for r in Role)
        raise ApplicationError(f"role: expected one of {names}, got {value!r}", field="role") from None


def password_check(password: str, *, username: str = "", field: str = "password") -> None:
    """Django's password validators; ApplicationError with every rule broken."""
    try:
        password_validation.validate_password(password, user=get_user_model()(username=username))
    except ValidationError as exc:
        raise ApplicationError(f"{field}: " + " ".join(exc.messages), field=field) from None


@transaction.atomic
def role_set(*, username: str, role: str) -> Membership:
    """Give a user a role."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    new = _role(role)
    membership, _ = Membership.objects.get_or_create(user=user, defaults={"role": new})
    before = role_of(user)
    if user.is_superuser and new != Role.ADMIN:
        raise Conflict(f"role: {username!r} is a superuser and stays Admin; take that away in /admin/ first")
    membership.role = new
    membership.full_clean()
    membership.save()
    user.__dict__.pop("_studio_role", None)
    audit.record("user.role", target=f"user {username}", before={"role": before}, after={"role": new.value})
    return membership


@transaction.atomic
def user_set_active(*, username: str, active: bool) -> Any:
    """Disable a user (no sign-in, no token works) or enable them again."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    acting = audit.current().user
    if not active and acting is not None and acting.pk == user.pk:
        raise Conflict("active: you cannot disable yourself", field="active")
    before = user.is_active
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit.record(
        "user.enable" if active else "user.disable",
        target=f"user {username}",
        before={"active": before},
        after={"active": active},
    )
    return user


@transaction.atomic
def invitation_create(*, role: str, note: str = "") -> tuple[Invitation, str]:
    """A one-time invitation with a role; returns the row and the secret for its link (shown once)."""
    secret = secrets.token_urlsafe(24)
    row = Invitation.objects.create(
        digest=tokens.digest(secret),
        role=_role(role),
        note=note.strip()[:200],
        created_by=audit.current().user,
        expires_at=timezone.now() + INVITATION_LIFETIME,
    )
    audit.record("user.invite", target=f"invitation {row.pk}", after={"role": row.role, "note": row.note})
    return row, secret


def invitation_get(*, secret: str) -> Invitation:
    """A usable invitation for its link's secret."""
    row = Invitation.objects.filter(digest=tokens.digest(secret)).first()
    if row is None:
        raise NotFound("this invitation link is not valid")
    if row.used_at is not None:
        raise Conflict("this invitation link was already used; ask an Admin for a new one")
    if row.expires_at <= timezone.now():
        raise Conflict(f"this invitation link expired on {row.expires_at:%Y-%m-%d}; ask an Admin for a new one")
    return row


@transaction.atomic
def invitation_accept(*, secret: str, username: str, password: str) -> Any:
    """Create the invited user with the invitation's role; the link cannot be used again."""
    row = invitation_get(secret=secret)
    if not Invitation.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=timezone.now()):
        raise Conflict("this invitation link was already used; ask an Admin for a new one")
    username = username.strip()
    User = get_user_model()
    try:
        User.username_validator(username)  # type: ignore[attr-defined]
    except ValidationError as exc:
        raise ApplicationError(f"username: {' '.join(exc.messages)}", field="username") from None
    if not username or len(username) > 150:
        raise ApplicationError("username: 1 to 150 characters", field="username")
    if User.objects.filter(username=username).exists():
        raise Conflict(f"username: {username!r} is taken", field="username")
    password_check(password, username=username)
    user = User.objects.create_user(username=username, password=password)
    Membership.objects.create(user=user, role=row.role)
    Invitation.objects.filter(pk=row.pk).update(used_by=user)
    audit.record("user.join", target=f"user {username}", after={"role": row.role}, user=user)
    return user


@transaction.atomic
def token_create(*, user: Any, name: str, expires_in_days: int | None = None) -> tuple[PersonalToken, str]:
    """A named personal API token; returns the row and the token itself (shown once, stored as a digest)."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ApplicationError(f"name: a name of 1 to 100 characters, got {name!r}", field="name")
    expires_at: datetime | None = None
    if expires_in_days is not None:
        if not isinstance(expires_in_days, int) or not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
            raise ApplicationError(
                f"expires_in_days: a whole number of days from 1 to {MAX_TOKEN_DAYS}, got {expires_in_days!r}",
                field="expires_in_days",
            )
        expires_at = timezone.now() + timedelta(days=expires_in_days)
    key = tokens.new_key()
    row = PersonalToken.objects.create(
        user=user, name=name, digest=tokens.digest(key), prefix=key[:10], expires_at=expires_at
    )
    audit.record(
        "token.create",
        target=f"token {name} of {user.get_username()}",
        after={"name": name, "expires_at": expires_at.isoformat() if expires_at else None},
        user=user,
    )
    return row, key


@transaction.atomic
def token_revoke(*, user: Any, token_id: int) -> PersonalToken:
    """Revoke one of the user's own tokens (it stops working at once)."""
    row = PersonalToken.objects.filter(user=user, pk=token_id).first()
    if row is None:
        raise NotFound(f"token {token_id} does not exist")
    if row.revoked_at is None:
        row.revoked_at = timezone.now()
        row.save(update_fields=["revoked_at"])
        audit.record("token.revoke", target=f"token {row.name} of {user.get_username()}", user=user)
    return row

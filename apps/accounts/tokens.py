"""Personal API tokens: made, looked up by their SHA-256 and checked for expiry and revocation.

`studio up`'s first token and the tokens of earlier versions (rest_framework.authtoken) keep working: a key
that is no personal token is looked up there.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from apps.accounts.models import PersonalToken

TOKEN_PREFIX = "stu_"
LAST_USED_GRANULARITY = timedelta(minutes=1)  # a token's "last used" is written at most once a minute


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_user(key: str) -> Any:
    """The active user a personal or legacy token belongs to; AuthenticationFailed naming why not."""
    now = timezone.now()
    row = PersonalToken.objects.select_related("user").filter(digest=digest(key)).first()
    if row is not None:
        if row.revoked_at is not None:
            raise exceptions.AuthenticationFailed(f"the API token {row.name!r} was revoked")
        if row.expires_at is not None and row.expires_at <= now:
            raise exceptions.AuthenticationFailed(f"the API token {row.name!r} expired at {row.expires_at:%Y-%m-%d}")
        user = row.user
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_GRANULARITY:
            PersonalToken.objects.filter(pk=row.pk).update(last_used_at=now)
    else:
        legacy = Token.objects.select_related("user").filter(key=key).first()
        if legacy is None:
            raise exceptions.AuthenticationFailed("invalid API token")
        user = legacy.user
    if not user.is_active:
        raise exceptions.AuthenticationFailed("the user of this API token is disabled")
    return user


class PersonalTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>` with a personal token (or an earlier version's token)."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        return token_user(key), key

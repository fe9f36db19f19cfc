"""Signed, expiring tokens for `aml_token` endpoints. Pure Python: the gateway verifies them too.

A token is `<base64url payload>.<base64url HMAC-SHA256>`; the payload names the endpoint and the
expiry. The key is the endpoint's own `token_secret`, so regenerating it revokes every token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(*, endpoint: str, secret: str, lifetime_s: int, now: float | None = None) -> tuple[str, int]:
    """A token for the endpoint and its expiry (Unix seconds)."""
    expires = int((now if now is not None else time.time()) + lifetime_s)
    payload = _b64(json.dumps({"ep": endpoint, "exp": expires}, separators=(",", ":")).encode())
    signature = _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}", expires


def verify_token(token: str, *, endpoint: str, secret: str, now: float | None = None) -> bool:
    """True when the token was signed with the secret, names the endpoint and has not expired."""
    try:
        payload, signature = token.split(".", 1)
        expected = _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(signature, expected):
            return False
        claims = json.loads(_unb64(payload))
    except (ValueError, json.JSONDecodeError):
        return False
    return claims.get("ep") == endpoint and claims.get("exp", 0) > (now if now is not None else time.time())

"""Short-lived signed download tokens for the storage initializer of a Kubernetes instance.

A pod has no studio credentials; it fetches its model and code from
`<STUDIO_PUBLIC_URL>/api/v1/downloads/<token>`, where the token names what to fetch and expires.
The token is Django's `TimestampSigner` (keyed by SECRET_KEY, salted so no other signed value of the
studio can be replayed here) over a small JSON object; it is URL-safe as is.
"""

from __future__ import annotations

from typing import Literal

from django.core import signing

from apps.core.errors import ApplicationError

DownloadKind = Literal["model", "code"]
KINDS: tuple[str, ...] = ("model", "code")
SALT = "studio.endpoints.download"


def sign_download(kind: DownloadKind, ident: str, ttl_s: int) -> str:
    """A URL-safe token that grants a download of one model or code snapshot for `ttl_s` seconds."""
    if kind not in KINDS:
        raise ValueError(f"download kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if ttl_s < 1:
        raise ValueError(f"ttl_s must be at least 1, got {ttl_s}")
    return signing.TimestampSigner(salt=SALT).sign_object({"k": kind, "i": ident, "t": ttl_s}, compress=True)


def verify_download(token: str, max_age_s: int) -> tuple[str, str]:
    """(kind, ident) of a valid token; ApplicationError (403) when forged, or older than its TTL or `max_age_s`."""
    signer = signing.TimestampSigner(salt=SALT)
    try:
        # Check the signature and the server-wide ceiling first, then the token's own TTL.
        claims = signer.unsign_object(token, max_age=max_age_s)
        signer.unsign_object(token, max_age=int(claims["t"]))
        kind, ident = str(claims["k"]), str(claims["i"])
    except signing.SignatureExpired as error:
        raise ApplicationError(f"download token: expired ({error})", field="token", status=403) from None
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise ApplicationError("download token: invalid signature", field="token", status=403) from None
    if kind not in KINDS:
        raise ApplicationError(f"download token: unknown kind {kind!r}", field="token", status=403)
    return kind, ident

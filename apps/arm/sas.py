"""Shared access signatures for the blob uploads the studio receives: one upload each, short-lived.

A SAS looks like Azure's (`sv=...&sr=d&sp=rcw&se=...&skoid=<grant>&sig=...`), so the SDK passes it through
untouched. `sig` is an HMAC (keyed by SECRET_KEY) over the grant id, container, kind, permissions and expiry, so
none of them can be changed by the client. The folder a grant reaches lives in the cache (Redis) under the grant
id for the SAS's lifetime: set at issue for `startPendingUpload` (sr=d), or, for the datastore's `listSecrets`
(sr=c, issued before the SDK has chosen its path), bound by the first request that uses it to that request's
upload folder (`LocalUpload/<hash>/`). Either way one SAS reaches one upload and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode

from django.conf import settings
from django.core.cache import cache

from apps.core.errors import ApplicationError

SAS_VERSION = "2021-08-06"
BIND_DEPTH = 2  # LocalUpload/<hash>/...: the folder the SDK gives each model upload


class SasRefused(ApplicationError):
    """The blob request's SAS is missing, forged, expired or outside its scope (403, as Azure answers)."""

    def __init__(self, message: str, *, code: str = "AuthenticationFailed") -> None:
        super().__init__(message, status=403)
        self.code = code


@dataclass(frozen=True)
class Grant:
    """What one SAS allows: blobs below `prefix` in `container` until `expires` (epoch seconds)."""

    grant_id: str
    container: str
    prefix: str
    expires: int


def _signature(grant_id: str, container: str, resource: str, permissions: str, expiry: str) -> str:
    key = hashlib.sha256(b"studio-blob-sas\0" + settings.SECRET_KEY.encode()).digest()
    message = "\n".join((grant_id, container, resource, permissions, expiry)).encode()
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def _expiry_text(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(grant_id: str) -> str:
    return f"arm:sas:{grant_id}"


def sas_issue(*, container: str, prefix: str | None = None, lifetime_s: int | None = None) -> str:
    """A SAS query string for blobs below `prefix` of `container` (None: the first upload folder it is used for)."""
    lifetime = lifetime_s if lifetime_s is not None else settings.STUDIO_SAS_LIFETIME_S
    grant_id = secrets.token_hex(16)
    expiry = _expiry_text(int(time.time()) + lifetime)
    permissions = "rcw"
    # sr=d: a folder named at issue; sr=c: bound to the first folder used. The SDK keeps only Azure's parameters,
    # so the folder itself stays in the cache, keyed by the signed grant id.
    resource = "c" if prefix is None else "d"
    if prefix is not None:
        cache.set(_key(grant_id), prefix.strip("/"), timeout=lifetime + 1)
    query = {
        "sv": SAS_VERSION,
        "sr": resource,
        "sp": permissions,
        "se": expiry,
        "skoid": grant_id,
        "sig": _signature(grant_id, container, resource, permissions, expiry),
    }
    return urlencode(query)


def sas_check(*, query: str, container: str, blob: str) -> Grant:
    """The grant of a blob request's SAS, if it allows this blob; SasRefused otherwise."""
    params = {key: values[0] for key, values in parse_qs(query, keep_blank_values=True).items()}
    if "sig" not in params:
        raise SasRefused(
            "no shared access signature in the request (sig is missing)", code="NoAuthenticationInformation"
        )
    grant_id, resource, permissions, expiry = (params.get(key, "") for key in ("skoid", "sr", "sp", "se"))
    expected = _signature(grant_id, container, resource, permissions, expiry)
    if not grant_id or resource not in ("c", "d") or not hmac.compare_digest(expected, params["sig"]):
        raise SasRefused(f"the signature does not match this container ({container!r}) or was altered")
    try:
        expires = int(datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise SasRefused(f"se: expected an expiry time like 2030-01-01T00:00:00Z, got {expiry!r}") from None
    now = time.time()
    if expires <= now:
        raise SasRefused(f"the shared access signature expired at {expiry}")
    if resource == "c":
        prefix = _bind(grant_id, container, blob, ttl=int(expires - now) + 1)
    else:
        prefix = cache.get(_key(grant_id))
        if prefix is None:
            raise SasRefused("the shared access signature's upload is no longer known; ask for a new one")
    if not blob.startswith(prefix + "/"):
        raise SasRefused(f"the shared access signature is for {container}/{prefix}/, not for {container}/{blob}")
    return Grant(grant_id=grant_id, container=container, prefix=prefix, expires=expires)


def _folder_key(container: str, folder: str) -> str:
    return f"arm:sas-folder:{container}/{folder}"


def _bind(grant_id: str, container: str, blob: str, *, ttl: int) -> str:
    """The upload folder an unbound grant is tied to: the first one it is used for, if no other grant holds it."""
    parts = blob.split("/")
    if len(parts) <= BIND_DEPTH or not all(parts[:BIND_DEPTH]):
        raise SasRefused(f"blob {blob!r}: an upload goes into a folder like LocalUpload/<id>/<file>")
    cache.add(_key(grant_id), "/".join(parts[:BIND_DEPTH]), timeout=ttl)
    folder = cache.get(_key(grant_id))
    if folder is None:
        raise SasRefused("the shared access signature's upload is no longer known; ask for a new one")
    cache.add(_folder_key(container, folder), grant_id, timeout=ttl)
    if cache.get(_folder_key(container, folder)) != grant_id:
        raise SasRefused(f"{container}/{folder}/ is being uploaded with another shared access signature")
    return str(folder)


def release(*, container: str, blob: str) -> None:
    """Forget which grant holds a finished upload's folder, so the same content can be uploaded again later."""
    parts = blob.strip("/").split("/")
    if len(parts) >= BIND_DEPTH:
        cache.delete(_folder_key(container, "/".join(parts[:BIND_DEPTH])))

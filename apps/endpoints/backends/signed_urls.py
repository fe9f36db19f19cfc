"""Download credentials for the storage initializer of a Kubernetes pod: as long-lived as the deployment.

A pod has no studio login. Its template names what it needs by digest
(`<studio>/api/v1/downloads/code/<code digest>`, `.../model/<model uid>`), and the deployment's
Secret holds one credential, sent as `Authorization: Bearer <credential>`. The credential is
Django's `Signer` (keyed by SECRET_KEY, salted so that no other signed value of the studio can be
replayed here) over a small JSON object: the scope it belongs to and the exact digests it may fetch.

It does not expire: a pod created weeks after the last apply (an HPA scale-out, an eviction, a node
drain) still starts. It is revoked with its scope: the studio refuses it once the deployment (or,
for manifests rendered for GitOps of a deployment the studio does not hold, the endpoint) is
deleted. It keeps the digests of the last few specs, so a pod of the previous template that starts
during a rollout still gets its own code, never the new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from django.core import signing

from apps.core.errors import ApplicationError

DownloadKind = Literal["model", "code"]
Scope = Literal["deployment", "endpoint"]
KINDS: tuple[str, ...] = ("model", "code")
SCOPES: tuple[str, ...] = ("deployment", "endpoint")
SALT = "studio.endpoints.download-credential"
# Digests of this many specs stay readable: the current one and the ones a rollout may still be replacing.
KEEP = 3


@dataclass(frozen=True)
class Credential:
    """What a download credential grants: the digests of `kind` it may fetch, while its scope exists."""

    scope: Scope
    uid: str
    code: tuple[str, ...] = ()
    models: tuple[str, ...] = ()

    def allows(self, kind: str, digest: str) -> bool:
        return digest in (self.code if kind == "code" else self.models if kind == "model" else ())


def sign_credential(
    *, scope: Scope, uid: str, code: Sequence[str] = (), models: Sequence[str] = (), previous: str = ""
) -> str:
    """A credential for `scope` `uid` granting these digests, and the newest of a `previous` one of the same scope."""
    if scope not in SCOPES:
        raise ValueError(f"credential scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    code_digests, model_uids = [d for d in code if d], [m for m in models if m]
    if previous:
        try:
            old = read_credential(previous)
        except ApplicationError:
            old = None
        if old is not None and (old.scope, old.uid) == (scope, uid):
            code_digests = _newest_first(code_digests, old.code)
            model_uids = _newest_first(model_uids, old.models)
    claims = {"s": scope, "u": uid, "c": code_digests[:KEEP], "m": model_uids[:KEEP]}
    return signing.Signer(salt=SALT).sign_object(claims, compress=True)


def read_credential(token: str) -> Credential:
    """The grant of a genuine credential; ApplicationError (403) when it is forged or malformed."""
    try:
        claims = signing.Signer(salt=SALT).unsign_object(token)
        scope, uid = str(claims["s"]), str(claims["u"])
        code = tuple(str(item) for item in claims["c"])
        models = tuple(str(item) for item in claims["m"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise ApplicationError("download credential: invalid signature", field="credential", status=403) from None
    if scope not in SCOPES:
        raise ApplicationError(f"download credential: unknown scope {scope!r}", field="credential", status=403)
    return Credential(scope=scope, uid=uid, code=code, models=models)  # type: ignore[arg-type]  # checked above


def _newest_first(new: list[str], old: Sequence[str]) -> list[str]:
    merged = list(new)
    for item in old:
        if item not in merged:
            merged.append(item)
    return merged

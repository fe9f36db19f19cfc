"""What a Kubernetes pod's storage initializer downloads: a model's or a code snapshot's files, as a tar stream.

The request names the content by digest (a model version's uid, a code snapshot's digest) and carries the
deployment's download credential (`backends/signed_urls.py`); `download_source` checks that the credential
grants that digest and that its deployment (or endpoint) still exists.

The archive is never built: `tar_plan` lists the files and their tar headers (so the length is known up
front), and `tar_stream` is an async generator that yields each header and then the file in 1 MiB chunks
read in a thread. Nothing is compressed (model weights are compressed already, and a pod on the cluster
network gains nothing), so the web process holds one chunk per download whatever the model's size, and the
same digest always gives the same bytes (an ETag a proxy can cache by).
"""

from __future__ import annotations

import asyncio
import re
import tarfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from apps.core.errors import ApplicationError, NotFound
from apps.endpoints.backends.signed_urls import KINDS, read_credential
from apps.endpoints.models import Deployment, Endpoint, Model, ProvisioningState

CHUNK = 1024 * 1024
BLOCK = tarfile.BLOCKSIZE
CODE_DIGEST = re.compile(r"^[0-9a-f]{16,64}$")


@dataclass(frozen=True)
class Member:
    """One file of the archive: its tar header and where its bytes come from."""

    header: bytes
    path: Path
    size: int


@dataclass(frozen=True)
class TarPlan:
    """The archive to stream: its members in order and its exact length."""

    members: tuple[Member, ...]

    @property
    def size(self) -> int:
        return sum(len(m.header) + _padded(m.size) for m in self.members) + 2 * BLOCK


def download_source(*, credential: str, kind: str, digest: str) -> tuple[Path, str]:
    """(folder, name) a genuine, unrevoked credential may download; ApplicationError (403/404) otherwise."""
    if kind not in KINDS:
        raise NotFound(f"download: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    grant = read_credential(credential)
    if not grant.allows(kind, digest):
        raise ApplicationError(f"download credential: not valid for {kind} {digest}", field="credential", status=403)
    if not _scope_alive(grant.scope, grant.uid):
        raise ApplicationError(
            f"download credential: revoked ({grant.scope} {grant.uid} was deleted)", field="credential", status=403
        )
    if kind == "model":
        model = Model.objects.filter(uid=digest).first() if _is_uuid(digest) else None
        if model is None:
            raise NotFound(f"model {digest} not found (was its version deleted?)")
        return model.root, f"{model.name}-{model.version}"
    folder = Path(settings.MEDIA_ROOT) / "code" / digest
    if not CODE_DIGEST.match(digest) or not folder.is_dir():
        raise NotFound(f"code snapshot {digest} not found")
    return folder, f"code-{digest[:12]}"


def _scope_alive(scope: str, uid: str) -> bool:
    if not _is_uuid(uid):
        return False
    if scope == "deployment":
        return Deployment.objects.filter(uid=uid).exclude(state=ProvisioningState.DELETING).exists()
    return Endpoint.objects.filter(uid=uid).exclude(provisioning_state=ProvisioningState.DELETING).exists()


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def tar_plan(root: Path) -> TarPlan:
    """The members of a tar of the folder's regular files (names relative to it; links are left out)."""
    members = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        info = tarfile.TarInfo(path.relative_to(root).as_posix())
        info.size = path.stat().st_size
        info.mode = 0o755 if path.stat().st_mode & 0o100 else 0o644
        info.mtime = 0  # the same digest always streams the same bytes
        members.append(Member(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"), path, info.size))
    return TarPlan(tuple(members))


async def tar_stream(plan: TarPlan) -> AsyncIterator[bytes]:
    """The archive, chunk by chunk: the event loop never waits on the disk, and memory holds one chunk."""
    for member in plan.members:
        yield member.header
        handle = await asyncio.to_thread(open, member.path, "rb")
        try:
            sent = 0
            while sent < member.size:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK, member.size - sent))
                if not chunk:
                    raise OSError(f"{member.path} is shorter than when the download started")
                sent += len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)
        if member.size % BLOCK:
            yield b"\0" * (BLOCK - member.size % BLOCK)
    yield b"\0" * (2 * BLOCK)


def _padded(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK

"""The blob store behind the studio's own Blob Storage endpoint: files on disk under MEDIA_ROOT/blobs.

Only what azure-ai-ml's uploads use: put a blob whole, put blocks and commit a block list (files over 64 MiB),
set metadata, read properties. Bodies are copied in 1 MiB chunks from the request's spooled file, never held
whole in memory. A blob lives here only until a model or code version takes it (apps/arm/services.py moves it
into an upload, stored as a CLI upload is).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from apps.core.errors import ApplicationError, NotFound
from apps.endpoints import storage

CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
MAX_BLOCKS = 50_000
MAX_BLOCK_ID = 64


@dataclass(frozen=True)
class BlobProperties:
    """What HEAD answers for a committed blob."""

    size: int
    modified: datetime
    etag: str
    metadata: dict[str, str]


def _root() -> Path:
    return Path(settings.MEDIA_ROOT) / "blobs"


def check_name(container: str, blob: str) -> None:
    """Refuse container and blob names that are not Azure's or that would leave the blob store."""
    if not CONTAINER.match(container):
        raise ApplicationError(f"container: {container!r} is not a valid container name", field="container")
    parts = blob.split("/")
    if not blob or len(blob) > 1024 or "\0" in blob or "\\" in blob or any(p in ("", ".", "..") for p in parts):
        raise ApplicationError(f"blob: {blob!r} is not a valid blob name", field="blob")


def blob_path(container: str, blob: str) -> Path:
    """Where a committed blob's bytes are."""
    check_name(container, blob)
    return _root() / "data" / container / blob


def _meta_path(container: str, blob: str) -> Path:
    return _root() / "meta" / container / f"{blob}.json"


def _blocks_dir(container: str, blob: str) -> Path:
    return _root() / "blocks" / container / hashlib.sha256(blob.encode()).hexdigest()


def _block_file(container: str, blob: str, block_id: str) -> Path:
    if not block_id or len(block_id) > MAX_BLOCK_ID * 2:
        raise ApplicationError(f"blockid: expected a base64 block id of at most 64 bytes, got {block_id!r}")
    return _blocks_dir(container, blob) / hashlib.sha256(block_id.encode()).hexdigest()


def _etag(path: Path) -> str:
    stat = path.stat()
    return f'"0x{stat.st_mtime_ns:X}{stat.st_size:X}"'


def _write(stream: storage.Readable, target: Path) -> None:
    """Copy a body to target through a temporary file beside it, so a broken upload leaves no half blob."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        storage.write_stream(stream, partial)
        if target.is_dir():
            raise ApplicationError(f"blob: {target.name!r} is a folder of other blobs", field="blob")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def blob_put(*, container: str, blob: str, stream: storage.Readable) -> str:
    """Store a whole blob (replacing one of the same name, dropping its metadata); its ETag."""
    target = blob_path(container, blob)
    _write(stream, target)
    _meta_path(container, blob).unlink(missing_ok=True)
    return _etag(target)


def block_put(*, container: str, blob: str, block_id: str, stream: storage.Readable) -> None:
    """Stage one block of a blob, to be committed by block_list_commit."""
    check_name(container, blob)
    _write(stream, _block_file(container, blob, block_id))


def block_list_commit(*, container: str, blob: str, block_ids: list[str]) -> str:
    """Join the staged blocks in the order given into the blob; its ETag. Staged blocks not listed are dropped."""
    target = blob_path(container, blob)
    if len(block_ids) > MAX_BLOCKS:
        raise ApplicationError(f"BlockList: at most {MAX_BLOCKS} blocks, got {len(block_ids)}")
    files = [_block_file(container, blob, block_id) for block_id in block_ids]
    for block_id, file in zip(block_ids, files, strict=True):
        if not file.is_file():
            raise ApplicationError(f"BlockList: block {block_id!r} was not uploaded", field="InvalidBlockList")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    total = 0
    try:
        with open(partial, "wb") as out:
            for file in files:
                total += file.stat().st_size
                if total > settings.STUDIO_MAX_UPLOAD_BYTES:
                    raise ApplicationError(f"file: larger than {settings.STUDIO_MAX_UPLOAD_BYTES} bytes", field="file")
                with open(file, "rb") as block:
                    shutil.copyfileobj(block, out, 1024 * 1024)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    shutil.rmtree(_blocks_dir(container, blob), ignore_errors=True)
    _meta_path(container, blob).unlink(missing_ok=True)
    return _etag(target)


def metadata_set(*, container: str, blob: str, metadata: dict[str, str]) -> str:
    """Replace a committed blob's metadata; its ETag."""
    target = blob_path(container, blob)
    if not target.is_file():
        raise NotFound(f"blob {container}/{blob} does not exist")
    meta = _meta_path(container, blob)
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps(metadata))
    return _etag(target)


def blob_properties(*, container: str, blob: str) -> BlobProperties | None:
    """A committed blob's size, time, ETag and metadata; None when there is no such blob."""
    target = blob_path(container, blob)
    if not target.is_file():
        return None
    meta = _meta_path(container, blob)
    metadata = json.loads(meta.read_text()) if meta.is_file() else {}
    stat = target.stat()
    return BlobProperties(
        size=stat.st_size,
        modified=datetime.fromtimestamp(stat.st_mtime, UTC),
        etag=_etag(target),
        metadata=metadata,
    )


def blob_take(*, container: str, blob: str) -> Path:
    """The committed blob or blob folder at this name, its metadata forgotten: the caller moves it away."""
    target = blob_path(container, blob.rstrip("/"))
    if not target.exists():
        raise NotFound(f"nothing was uploaded to {container}/{blob}")
    meta = _meta_path(container, blob.rstrip("/"))
    if target.is_dir():
        shutil.rmtree(meta.with_suffix(""), ignore_errors=True)
    meta.unlink(missing_ok=True)
    return target

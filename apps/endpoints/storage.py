"""Files on disk: uploads (with archive checks), model versions and content-addressed code snapshots."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Protocol

from django.conf import settings

from apps.core.errors import ApplicationError

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")


def _safe_member(name: str) -> PurePosixPath:
    """Refuse absolute paths and parent references: an archive may only write below its folder."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and path.parts[0].endswith(":")):
        raise ApplicationError(f"file: the archive entry {name!r} points outside its folder; refusing it", field="file")
    return path


def _refuse(name: str, why: str) -> ApplicationError:
    return ApplicationError(f"file: the archive entry {name[:200]!r} {why}; refusing the archive", field="file")


def check_entries(entries: list[tuple[str, bool]]) -> dict[str, PurePosixPath | None]:
    """Check an archive's (name, is folder) entries before anything is written; their paths by name.

    Refused, naming the entry: a file named `.` or with an empty name, two entries for one path, a file and a
    folder of the same name (in either order, or a file that another entry puts things under). A folder entry
    naming the archive's root (`./`) is no entry at all (None).
    """
    files: set[PurePosixPath] = set()
    folders: set[PurePosixPath] = set()
    paths: dict[str, PurePosixPath | None] = {}
    for name, is_dir in entries:
        path = _safe_member(name)
        if not path.parts:
            if is_dir:
                paths[name] = None
                continue
            raise _refuse(name, "has no name (a file must be named)")
        if path in files or (path in folders and not is_dir):
            raise _refuse(name, "names a path that an earlier entry already holds (a duplicate, or file and folder)")
        parents = set(path.parents) - {PurePosixPath(".")}
        clash = parents & files
        if clash:
            raise _refuse(name, f"is inside {str(next(iter(clash)))!r}, which an earlier entry made a file")
        if is_dir:
            if path in folders:
                raise _refuse(name, "is a duplicate folder entry")
            folders.add(path)
        else:
            files.add(path)
        folders |= parents
        paths[name] = path
    return paths


def _archive_kind(archive: Path) -> str:
    """zip, gzip or other, from the file's first bytes (a corrupt zip still starts like one)."""
    with open(archive, "rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    return "other"


def _corrupt(kind: str, error: BaseException) -> ApplicationError:
    detail = " ".join(str(error).split()) or type(error).__name__
    return ApplicationError(f"file: the {kind} archive is corrupt or truncated ({detail})", field="file")


def extract_archive(archive: Path, dest: Path) -> None:
    """Unpack a zip or tar archive into dest, refusing path traversal, links and device files; a damaged
    archive is named corrupt."""
    kind = _archive_kind(archive)
    if kind == "zip" and not zipfile.is_zipfile(archive):
        raise _corrupt(".zip", zipfile.BadZipFile("no central directory: the file was cut short"))
    try:
        _extract(archive, dest)
    except (zipfile.BadZipFile, zlib.error, EOFError, gzip.BadGzipFile) as error:
        raise _corrupt(".zip" if kind == "zip" else ".tar.gz", error) from None
    except tarfile.TarError as error:
        if kind == "gzip":
            raise _corrupt(".tar.gz", error) from None
        raise ApplicationError("file: a folder upload must be a .zip or .tar.gz archive", field="file") from None


def _extract(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    limit = settings.STUDIO_MAX_UPLOAD_BYTES
    total = 0
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = check_entries([(info.filename, info.is_dir()) for info in zf.infolist()])
            for info in zf.infolist():
                member = members[info.filename]
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise ApplicationError(
                        f"file: the archive entry {info.filename!r} is a symbolic link", field="file"
                    )
                total += info.file_size
                if total > limit:
                    raise ApplicationError(f"file: the archive unpacks to more than {limit} bytes", field="file")
                if member is None:
                    continue
                target = dest / member
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        return
    with tarfile.open(archive) as tf:
        infos = tf.getmembers()
        paths = check_entries([(info.name, info.isdir()) for info in infos])
        for member_info in infos:
            member = paths[member_info.name]
            if not (member_info.isfile() or member_info.isdir()):
                raise ApplicationError(
                    f"file: the archive entry {member_info.name!r} is not a regular file or folder", field="file"
                )
            total += member_info.size
            if total > limit:
                raise ApplicationError(f"file: the archive unpacks to more than {limit} bytes", field="file")
            if member is None:
                continue
            target = dest / member
            if member_info.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            extracted = tf.extractfile(member_info)
            assert extracted is not None
            with extracted as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


class Readable(Protocol):
    """What an upload is read from: an open file, an uploaded file, a request body."""

    def read(self, size: int, /) -> bytes: ...


def write_stream(stream: Readable, target: Path) -> tuple[str, int]:
    """Copy a stream to a file; its SHA-256 and size."""
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            size += len(chunk)
            if size > settings.STUDIO_MAX_UPLOAD_BYTES:
                raise ApplicationError(f"file: larger than {settings.STUDIO_MAX_UPLOAD_BYTES} bytes", field="file")
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def tree_digest(root: Path) -> tuple[str, int, int]:
    """SHA-256 over a file or folder's relative paths and contents; total size; file count."""
    digest = hashlib.sha256()
    size = 0
    count = 0
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        relative = path.name if root.is_file() else path.relative_to(root).as_posix()
        digest.update(relative.encode() + b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(chunk)
                size += len(chunk)
        count += 1
    return digest.hexdigest(), size, count


def copy_tree(source: Path, target: Path) -> None:
    """Copy a file or folder to target (which must not exist)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)


def code_snapshot(source: Path) -> str:
    """Copy a code folder into content-addressed storage; its path relative to MEDIA_ROOT."""
    digest, _, _ = tree_digest(source)
    relative = f"code/{digest[:32]}"
    target = Path(settings.MEDIA_ROOT) / relative
    if not target.exists():
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        copy_tree(source, staging)
        staging.rename(target)
    return relative


def list_files(root: Path) -> list[str]:
    """Relative paths of every file below root (or the file's own name)."""
    if root.is_file():
        return [root.name]
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

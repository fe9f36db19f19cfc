"""The storage initializer: lays out a deployment's model and code where the inference server expects them.

Two callers share the layout, copy, extract and check logic here:
- a Kubernetes pod's `storage-initializer` init container runs `python -m runtime.storage_initializer`,
  which downloads the model and code as tar archives from signed URLs and unpacks them into the pod's
  shared volume;
- the local backend (apps/endpoints/initializer.py) copies them from the studio's own folders.

Standard library only and no Django: it runs in the runtime image, on the image's own Python.

Environment of the command (a variable left empty skips that part):
  STUDIO_MODEL_URL, STUDIO_MODEL_DIR   the model archive and the folder it is unpacked into
  STUDIO_CODE_URL, STUDIO_CODE_DIR     the code archive and the folder it is unpacked into
  STUDIO_ENTRY_SCRIPT                  the scoring script, checked to be in the code folder
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO

MODELS_FOLDER = "azureml-models"
# HTTP answers a retry cannot change: the token is wrong or expired, or what it names is gone.
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 410})
CHUNK = 1024 * 1024


class InitializeError(Exception):
    """The files could not be laid out; the message says what and why, for the log and the termination message."""


def say(log: IO[str], text: str) -> None:
    """One timestamped line of the storage-initializer's log."""
    log.write(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} storage-initializer: {text}\n")
    log.flush()


# --- layout (Azure's) ---


def model_subdir(asset: str) -> PurePosixPath:
    """`azureml:name:version` → `name/version`: AZUREML_MODEL_DIR below the models folder, as on Azure."""
    stripped = asset.removeprefix("azureml:")
    parts = [re.sub(r"[^A-Za-z0-9._-]", "_", part) for part in re.split(r"[:@]", stripped) if part]
    if len(parts) == 1:
        parts.append("1")
    return PurePosixPath(*(parts or ["model", "1"]))


def check_entry_script(code_dir: Path, entry_script: str) -> None:
    """The scoring script must be a file inside the code folder."""
    relative = PurePosixPath(entry_script)
    if relative.is_absolute() or ".." in relative.parts or not (code_dir / relative).is_file():
        raise InitializeError(f"scoring_script {entry_script!r} is not in the code folder")


def count_files(folder: Path) -> int:
    """How many files a laid-out folder holds (the log says it, so an empty archive is noticed)."""
    return sum(1 for item in folder.rglob("*") if item.is_file())


# --- copy (local folders) ---


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def copy_into(source: Path, target: Path) -> int:
    """Lay a file or folder out at `target`: hard links when on the same disk (instant), copies otherwise."""
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link_or_copy, symlinks=False)
        return count_files(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _link_or_copy(str(source), str(target))
    return 1


# --- extract (archives) ---


def _safe_members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Every entry, refusing any that would write outside the folder or is not a plain file or folder."""
    for member in archive:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise InitializeError(f"the archive entry {member.name!r} points outside its folder; refusing it")
        if not (member.isfile() or member.isdir()):
            raise InitializeError(f"the archive entry {member.name!r} is not a regular file or folder; refusing it")
        yield member


def extract_into(stream: IO[bytes], dest: Path) -> int:
    """Unpack a tar stream (any compression) into `dest`, all or nothing; returns the number of files.

    The archive is unpacked beside `dest` and moved into place only once complete, so a download cut
    short never leaves a half-filled folder that the inference server would start on.
    """
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            for member in _safe_members(archive):
                archive.extract(member, staging, filter="data")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return count_files(dest)


def _server_message(error: urllib.error.HTTPError) -> str:
    """The studio's own explanation (`{"error": {"message": ...}}`), else the HTTP reason."""
    try:
        body = json.loads(error.read(64 * 1024) or b"{}")
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError, OSError):
        return str(error.reason)


def download_into(
    url: str,
    dest: Path,
    *,
    what: str,
    log: IO[str],
    attempts: int = 5,
    retry_delay_s: float = 2.0,
    timeout_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Download a tar archive and unpack it into `dest`; transient failures are retried with a growing delay."""
    for attempt in range(1, attempts + 1):
        say(log, f"downloading {what} into {dest} (attempt {attempt} of {attempts})")
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                return extract_into(response, dest)
        except urllib.error.HTTPError as error:
            detail = f"HTTP {error.code}: {_server_message(error)}"
            if error.code in PERMANENT_STATUSES:
                raise InitializeError(f"download of {what} refused ({detail})") from None
            problem = detail
        except InitializeError:
            raise
        except ValueError as error:  # not a URL urllib can fetch: no retry helps
            raise InitializeError(f"download of {what}: {error}") from None
        except (OSError, EOFError, tarfile.TarError, http.client.HTTPException) as error:
            # A connection cut, a body shorter than its Content-Length or a truncated archive: try again.
            problem = f"{type(error).__name__}: {error}"
        say(log, f"download of {what} failed: {problem}")
        if attempt == attempts:
            raise InitializeError(f"download of {what} failed after {attempts} attempts: {problem}")
        sleep(retry_delay_s * attempt)
    raise AssertionError("unreachable")


# --- the init container's command ---


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """Download the model and code named by the environment; 0 when both are laid out, 1 with a reason otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m runtime.storage_initializer",
        description="Download a deployment's model and code archives into the inference server's folders.",
    )
    parser.add_argument("--attempts", type=int, default=5, help="tries per archive (default 5)")
    parser.add_argument("--retry-delay", type=float, default=2.0, help="seconds × attempt between tries (default 2)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a try fails")
    args = parser.parse_args(argv)
    if args.attempts < 1:
        parser.error(f"--attempts must be at least 1, got {args.attempts}")
    env = os.environ if environ is None else environ
    log = sys.stdout
    started = time.monotonic()
    try:
        for what, url_key, dir_key in (
            ("model", "STUDIO_MODEL_URL", "STUDIO_MODEL_DIR"),
            ("code", "STUDIO_CODE_URL", "STUDIO_CODE_DIR"),
        ):
            url, dest = env.get(url_key, ""), env.get(dir_key, "")
            if not url or not dest:
                continue
            count = download_into(
                url,
                Path(dest),
                what=what,
                log=log,
                attempts=args.attempts,
                retry_delay_s=args.retry_delay,
                timeout_s=args.timeout,
            )
            say(log, f"{what} ready: {count} files in {dest}")
        entry_script, code_dir = env.get("STUDIO_ENTRY_SCRIPT", ""), env.get("STUDIO_CODE_DIR", "")
        if entry_script and code_dir:
            check_entry_script(Path(code_dir), entry_script)
    except InitializeError as error:
        # Last on stderr: Kubernetes keeps the last log lines as the container's termination message.
        print(f"storage-initializer: ERROR {error}", file=sys.stderr, flush=True)
        return 1
    say(log, f"done in {time.monotonic() - started:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The storage initializer of a local instance: lays out model and code as Azure does, and logs it.

Azure mounts the model under `/var/azureml-app/azureml-models/<name>/<version>/` (that folder is
AZUREML_MODEL_DIR and holds the model's own file or folder, named as registered) and the code
folder under `/var/azureml-app/`. Locally the instance folder takes `/var/azureml-app`'s place.
Files are hard-linked when they can be (same disk, instant) and copied otherwise.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from apps.endpoints.backends.base import DeploymentSpec


class InitializerFailed(Exception):
    """The instance's files could not be laid out; `reason` is Azure's (ModelNotFound, StorageInitializerFailed)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Layout:
    """Where an instance's files are, as the runtime's environment variables name them."""

    app_root: Path
    model_dir: Path | None
    entry_script: str | None


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _copy(source: Path, target: Path) -> int:
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link_or_copy, symlinks=False)
        return sum(1 for item in target.rglob("*") if item.is_file())
    target.parent.mkdir(parents=True, exist_ok=True)
    _link_or_copy(str(source), str(target))
    return 1


def _model_name_version(spec: DeploymentSpec) -> tuple[str, str]:
    asset = (spec.model_asset or "").removeprefix("azureml:")
    name, _, version = asset.rpartition(":")
    return (name or asset or "model"), (version or "1")


def initialize(spec: DeploymentSpec, folder: Path, log_path: Path) -> Layout:
    """Lay out the model and the code of one instance under `folder`; every step goes to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "a") as log:

        def say(text: str) -> None:
            log.write(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} storage-initializer: {text}\n")
            log.flush()

        say(f"initializing instance files for {spec.endpoint_name}/{spec.name} generation {spec.generation}")
        app_root = folder / "var" / "azureml-app"
        shutil.rmtree(app_root, ignore_errors=True)
        app_root.mkdir(parents=True)
        model_dir: Path | None = None
        if spec.model_asset:
            name, version = _model_name_version(spec)
            source = Path(spec.model_root or "") / (spec.model_path_name or "")
            if not spec.model_root or not spec.model_path_name or not source.exists():
                say(f"ERROR model {spec.model_asset}: {source} does not exist")
                raise InitializerFailed(
                    "ModelNotFound",
                    f"model {spec.model_asset}: its files ({spec.model_path_name or '?'}) are missing from the "
                    f"model store at {spec.model_root}; register the model again",
                )
            model_dir = app_root / "azureml-models" / name / version
            model_dir.mkdir(parents=True)
            try:
                count = _copy(source, model_dir / spec.model_path_name)
            except OSError as exc:
                say(f"ERROR copying model {spec.model_asset}: {exc}")
                raise InitializerFailed("StorageInitializerFailed", f"copying model {spec.model_asset}: {exc}") from exc
            say(f"model {spec.model_asset}: {count} file(s) -> {model_dir}/{spec.model_path_name}")
        entry: str | None = None
        code_dir = app_root
        if spec.code_root:
            source = Path(spec.code_root)
            if not source.is_dir():
                say(f"ERROR code folder {source} does not exist")
                raise InitializerFailed(
                    "StorageInitializerFailed", f"the code folder of the deployment is missing: {source}"
                )
            code_dir = app_root / "code"
            try:
                count = _copy(source, code_dir)
            except OSError as exc:
                say(f"ERROR copying code: {exc}")
                raise InitializerFailed("StorageInitializerFailed", f"copying the code folder: {exc}") from exc
            say(f"code: {count} file(s) -> {code_dir}")
            if spec.scoring_script:
                if not (code_dir / spec.scoring_script).is_file():
                    say(f"ERROR scoring script {spec.scoring_script} is not in the code folder")
                    raise InitializerFailed(
                        "StorageInitializerFailed",
                        f"scoring_script {spec.scoring_script!r} is not in the code folder",
                    )
                entry = spec.scoring_script
        say(f"done in {time.monotonic() - started:.2f} s")
    return Layout(app_root=code_dir, model_dir=model_dir, entry_script=entry)

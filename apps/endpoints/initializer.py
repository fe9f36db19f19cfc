"""The storage initializer of a local instance: lays out model and code as Azure does, and logs it.

Azure mounts the model under `/var/azureml-app/azureml-models/<name>/<version>/` (that folder is
AZUREML_MODEL_DIR and holds the model's own file or folder, named as registered) and the code
folder under `/var/azureml-app/`. Locally the instance folder takes `/var/azureml-app`'s place.
The layout, copy and checks are the ones a Kubernetes pod's init container runs
(`runtime.storage_initializer`); here the files come from the studio's folders instead of downloads.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from apps.endpoints.backends.base import DeploymentSpec
from runtime import storage_initializer as shared


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


def layout(spec: DeploymentSpec, folder: Path) -> Layout:
    """Where `initialize` puts the files of the instance in `folder` (a restart finds them there)."""
    app_root = folder / "var" / "azureml-app"
    model_dir = app_root / shared.MODELS_FOLDER / shared.model_subdir(spec.model_asset) if spec.model_asset else None
    return Layout(
        app_root=app_root / "code" if spec.code_root else app_root,
        model_dir=model_dir,
        entry_script=spec.scoring_script if spec.code_root else None,
    )


def initialize(spec: DeploymentSpec, folder: Path, log_path: Path) -> Layout:
    """Lay out the model and the code of one instance under `folder`; every step goes to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    target = layout(spec, folder)
    with open(log_path, "a") as log:
        shared.say(
            log, f"initializing instance files for {spec.endpoint_name}/{spec.name} generation {spec.generation}"
        )
        app_root = folder / "var" / "azureml-app"
        shutil.rmtree(app_root, ignore_errors=True)
        app_root.mkdir(parents=True)
        if spec.model_asset and target.model_dir is not None:
            source = Path(spec.model_root or "") / (spec.model_path_name or "")
            if not spec.model_root or not spec.model_path_name or not source.exists():
                shared.say(log, f"ERROR model {spec.model_asset}: {source} does not exist")
                raise InitializerFailed(
                    "ModelNotFound",
                    f"model {spec.model_asset}: its files ({spec.model_path_name or '?'}) are missing from the "
                    f"model store at {spec.model_root}; register the model again",
                )
            target.model_dir.mkdir(parents=True)
            try:
                count = shared.copy_into(source, target.model_dir / spec.model_path_name)
            except OSError as exc:
                shared.say(log, f"ERROR copying model {spec.model_asset}: {exc}")
                raise InitializerFailed("StorageInitializerFailed", f"copying model {spec.model_asset}: {exc}") from exc
            shared.say(log, f"model {spec.model_asset}: {count} file(s) -> {target.model_dir}/{spec.model_path_name}")
        if spec.code_root:
            source = Path(spec.code_root)
            if not source.is_dir():
                shared.say(log, f"ERROR code folder {source} does not exist")
                raise InitializerFailed(
                    "StorageInitializerFailed", f"the code folder of the deployment is missing: {source}"
                )
            try:
                count = shared.copy_into(source, target.app_root)
            except OSError as exc:
                shared.say(log, f"ERROR copying code: {exc}")
                raise InitializerFailed("StorageInitializerFailed", f"copying the code folder: {exc}") from exc
            shared.say(log, f"code: {count} file(s) -> {target.app_root}")
            if target.entry_script:
                try:
                    shared.check_entry_script(target.app_root, target.entry_script)
                except shared.InitializeError as exc:
                    shared.say(log, f"ERROR {exc}")
                    raise InitializerFailed("StorageInitializerFailed", str(exc)) from exc
        shared.say(log, f"done in {time.monotonic() - started:.2f} s")
    return target

"""Environments for the local backend: one cached virtual environment per Environment.spec_hash.

Built with `uv` on the studio's own interpreter: the runtime's dependencies, the pip requirements,
and the conda file's `pip:` section and conda packages mapped to PyPI names and pins. The runtime
is made importable through a .pth that points at a folder holding only links to the `runtime` and
`azureml` (compat shim) packages, never the whole repository, so user code cannot import Django
or the studio. Builds of one spec share one build (file lock); a failed build is never kept as good.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

import runtime
from apps.endpoints.backends.base import EnvironmentSpec

READY_MARKER = ".studio-ready"
RUNTIME_DIR = Path(runtime.__file__).resolve().parent
COMPAT_AZUREML = RUNTIME_DIR / "compat" / "azureml"

# conda names whose PyPI name differs.
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "py-xgboost": "xgboost",
    "py-lightgbm": "lightgbm",
    "tensorflow-cpu": "tensorflow-cpu",
    "pyyaml": "PyYAML",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "pillow": "Pillow",
    "python-dateutil": "python-dateutil",
    "scikit-learn": "scikit-learn",
    "sklearn": "scikit-learn",
    "opencv": "opencv-python-headless",
    "py-opencv": "opencv-python-headless",
    "protobuf": "protobuf",
    "libprotobuf": "protobuf",
}
# conda packages that are system libraries or tools with no PyPI package to take their place.
CONDA_ONLY = {
    "cudatoolkit",
    "cudnn",
    "nccl",
    "mkl",
    "mkl-service",
    "intel-openmp",
    "openmpi",
    "mpich",
    "libgcc",
    "libgcc-ng",
    "libstdcxx-ng",
    "libgfortran",
    "openblas",
    "libblas",
    "blas",
    "gcc",
    "gxx",
    "make",
    "cmake-binary",
    "r-base",
    "nodejs",
    "openjdk",
}
# Part of every environment already, whatever the conda file says.
IMPLIED = {"pip", "setuptools", "wheel"}
_CONDA_SPEC = re.compile(r"^(?:(?P<channel>[\w.-]+)::)?(?P<name>[A-Za-z0-9_.\-]+)\s*(?P<rest>.*)$")


class BuildFailed(Exception):
    """The environment could not be built; the message is what the user should read."""


@dataclass(frozen=True)
class BuiltEnvironment:
    """A ready virtual environment and what its build noticed."""

    path: Path
    python: Path
    cached: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def build_log(self) -> Path:
        return self.path / "build.log"


def _uv() -> list[str]:
    """The uv installed next to the studio's interpreter, else `python -m uv`."""
    beside = Path(sys.executable).with_name("uv")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "uv"]


def _version_pin(rest: str) -> str:
    """conda's `=1.2.3[=build]` / ` 1.2.3` / `>=1.2` as a pip specifier."""
    rest = rest.strip()
    if not rest:
        return ""
    if rest[0] in "<>!~" or rest.startswith("=="):
        return rest.replace(" ", "")
    version = rest.lstrip("= ").split("=")[0].split(" ")[0]
    if not version:
        return ""
    if version.endswith("*"):
        return f"=={version}"
    # conda's `numpy=2.3` means 2.3.*, `numpy=2.3.1` means exactly that release.
    return f"=={version}" if version.count(".") >= 2 else f"=={version}.*"


def requirements_for(environment: EnvironmentSpec) -> tuple[list[str], list[str]]:
    """The pip requirement lines an environment needs, and notes for its build log (python pin checks).

    Raises BuildFailed naming a conda package that has no PyPI equivalent.
    """
    lines: list[str] = []
    notes: list[str] = []
    conda: Mapping[str, object] = environment.conda_file or {}
    here = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    for dependency in conda.get("dependencies") or []:  # type: ignore[union-attr,attr-defined]
        if isinstance(dependency, Mapping):
            for item in dependency.get("pip") or []:
                if str(item).strip():
                    lines.append(str(item).strip())
            continue
        match = _CONDA_SPEC.match(str(dependency).strip())
        if match is None:
            raise BuildFailed(f"conda dependency {dependency!r} is not a package specification")
        name, rest = match["name"].lower(), match["rest"]
        if name == "python":
            wanted = rest.lstrip("=<>~! ").split("=")[0].split(" ")[0]
            if wanted and not here.startswith(wanted.rstrip(".*")):
                notes.append(f"conda file asks for python {rest.strip()}; the environment uses Python {here}")
            continue
        if name in IMPLIED:
            if rest.strip():
                notes.append(f"conda file pins {name} {rest.strip()}; the environment uses the installer's own")
            continue
        if name in CONDA_ONLY or name.startswith("_"):
            raise BuildFailed(
                f"conda package {match['name']!r} has no PyPI equivalent; local environments are built with pip "
                "packages only (remove it, or deploy to the Kubernetes backend with an image that has it)"
            )
        lines.append(CONDA_TO_PYPI.get(name, match["name"]) + _version_pin(rest))
    for raw in environment.pip_requirements.splitlines():
        line = raw.split(" #")[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines, notes


def env_path(environment: EnvironmentSpec) -> Path:
    """Where the environment for this spec lives (built or not)."""
    return Path(settings.STUDIO_ENVS_DIR) / environment.spec_hash


def build_log_path(environment: EnvironmentSpec) -> Path:
    """The last build's log; kept beside the environment so a failed build's log survives too."""
    return Path(settings.STUDIO_ENVS_DIR) / f"{environment.spec_hash}.build.log"


def ensure_environment(environment: EnvironmentSpec) -> BuiltEnvironment:
    """The built environment for `environment`, building it first unless a good build is cached."""
    root = Path(settings.STUDIO_ENVS_DIR)
    root.mkdir(parents=True, exist_ok=True)
    target = env_path(environment)
    if (target / READY_MARKER).exists():
        return BuiltEnvironment(target, target / "bin" / "python", cached=True)
    with open(root / f"{environment.spec_hash}.lock", "w") as lock:
        # Another worker may be building this very spec: wait for it and use its result.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / READY_MARKER).exists():
            return BuiltEnvironment(target, target / "bin" / "python", cached=True)
        return _build(environment, target)


def _build(environment: EnvironmentSpec, target: Path) -> BuiltEnvironment:
    lines, notes = requirements_for(environment)
    work = target.with_name(f"{target.name}.building")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    log_path = build_log_path(environment)
    env = {**os.environ, "UV_CACHE_DIR": settings.STUDIO_UV_CACHE_DIR, "VIRTUAL_ENV": str(work)}
    env.pop("PYTHONPATH", None)
    started = time.monotonic()
    with open(log_path, "w") as log:
        log.write(f"environment {environment.name}:{environment.version} (spec {environment.spec_hash})\n")
        for note in notes:
            log.write(f"note: {note}\n")
        log.flush()

        def run(args: list[str]) -> None:
            log.write("$ " + " ".join(args) + "\n")
            log.flush()
            done = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=1800, check=False)
            if done.returncode != 0:
                log.flush()
                raise BuildFailed(_failure_excerpt(log_path))

        try:
            run([*_uv(), "venv", "--quiet", "--python", sys.executable, str(work)])
            requirements = work / "studio-requirements.txt"
            runtime_requirements = (RUNTIME_DIR / "requirements.txt").read_text()
            requirements.write_text(runtime_requirements + "\n" + "\n".join(lines) + "\n")
            run([*_uv(), "pip", "install", "--python", str(work / "bin" / "python"), "-r", str(requirements)])
            _link_runtime(work)
        except BuildFailed:
            shutil.rmtree(work, ignore_errors=True)
            raise
        except (OSError, subprocess.SubprocessError) as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise BuildFailed(f"could not run the installer: {exc}") from exc
        log.write(f"built in {time.monotonic() - started:.1f} s\n")
    # The venv's scripts name their folder; uv venvs are relocatable enough for python -m use.
    work.rename(target)
    shutil.copyfile(log_path, target / "build.log")
    (target / READY_MARKER).write_text(environment.spec_hash)
    return BuiltEnvironment(target, target / "bin" / "python", cached=False, notes=tuple(notes))


def _link_runtime(venv: Path) -> None:
    """A .pth pointing at a folder with only the runtime and the azureml shim: user code sees nothing else."""
    shim = venv / "studio-runtime"
    shim.mkdir()
    (shim / "runtime").symlink_to(RUNTIME_DIR, target_is_directory=True)
    (shim / "azureml").symlink_to(COMPAT_AZUREML, target_is_directory=True)
    site_packages = next((venv / "lib").glob("python*/site-packages"))
    # Relative to the env, so the finished folder still works after the rename from `.building`.
    (site_packages / "studio-runtime.pth").write_text(
        "import os, sys; sys.path.append(os.path.join(sys.prefix, 'studio-runtime'))\n"
    )


def _failure_excerpt(log_path: Path, lines: int = 25) -> str:
    """The installer's own error: the last lines of the build log, without the noise of progress."""
    text = log_path.read_text(errors="replace").splitlines()
    kept = [line for line in text if line.strip() and not line.startswith("$ ")]
    return "\n".join(kept[-lines:])

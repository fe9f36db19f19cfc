"""Environments for the local backend: one cached virtual environment per Environment.spec_hash.

Built with `uv`: the runtime's dependencies, the pip requirements, and the conda file's `pip:` section and
conda packages mapped to PyPI names and pins, resolved the way conda would and checked before use:

- Azure's inference server (`azureml-defaults`, `azureml-inference-server-http`) is replaced by our runtime.
- The conda file's Python is used when the machine has it (and the runtime runs on it); otherwise a note says
  which Python is used.
- Unpinned packages resolve no newer than what was current when the newest pinned package was released (uv's
  `--exclude-newer`), so a package pinned to a release built against numpy 1.x gets a numpy 1.x.
- After the install every requested package is imported in the new environment (a subprocess of it); one that
  does not import fails the build with its error, and the environment is not kept.

The runtime is made importable through a .pth that points at a folder holding only links to the `runtime`
and `azureml` (compat shim) packages, never the whole repository, so user code cannot import Django or the
studio. Builds of one spec share one build (file lock); a failed build is never kept as good.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings

import runtime
from apps.endpoints import requirements, tenant
from apps.endpoints.backends.base import EnvironmentSpec

READY_MARKER = ".studio-ready"
# Bumped when the build rules change, so environments built by earlier rules are built again.
BUILD_RULES = "3"
RUNTIME_DIR = Path(runtime.__file__).resolve().parent
COMPAT_AZUREML = RUNTIME_DIR / "compat" / "azureml"
RUNTIME_MIN_PYTHON = (3, 10)  # the oldest Python the runtime runs on

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
# Azure's inference server and the shim that only it needs: Studio's runtime takes their place.
AZURE_SERVER = {"azureml-defaults", "azureml-inference-server-http", "azureml-contrib-services"}
_CONDA_SPEC = re.compile(r"^(?:(?P<channel>[\w.-]+)::)?(?P<name>[A-Za-z0-9_.\-]+)\s*(?P<rest>.*)$")
_REQUIREMENT = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<rest>[^;#]*)")
_EXACT_PIN = re.compile(r"^==\s*(?P<version>[A-Za-z0-9.!+*-]+)\s*$")
DEFAULT_INDEX = "https://pypi.org/simple"
INDEX_TIMEOUT = httpx.Timeout(20.0, connect=10.0)
IMPORT_CHECK_TIMEOUT_S = 600


class BuildFailed(Exception):
    """The environment could not be built; the message's first line says why, the rest is the detail."""


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


@functools.cache
def uv_can_exempt_packages() -> bool:
    """True when this uv has `--exclude-newer-package` (the date rule needs it to spare pinned packages)."""
    try:
        done = subprocess.run(
            [*_uv(), "pip", "install", "--help"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return "--exclude-newer-package" in done.stdout


def normalize(name: str) -> str:
    """PEP 503's form of a distribution name (`Scikit_Learn` → `scikit-learn`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str | None:
    """The distribution a pip requirement line names (None for options, URLs and paths)."""
    if " @ " in line:  # `name @ file:///...`: a direct reference still names its distribution
        line = line.split(" @ ", 1)[0]
    elif line.startswith(("-", ".", "/")) or "://" in line:
        return None
    match = _REQUIREMENT.match(line)
    return normalize(match["name"]) if match else None


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


def requested_python(environment: EnvironmentSpec) -> str | None:
    """The Python version the conda file pins (`python=3.9` → "3.9"), if any."""
    conda: Mapping[str, object] = environment.conda_file or {}
    for dependency in conda.get("dependencies") or []:  # type: ignore[attr-defined]
        if isinstance(dependency, Mapping):
            continue
        match = _CONDA_SPEC.match(str(dependency).strip())
        if match and match["name"].lower() == "python":
            # `=3.9`, `==3.9.*`, `3.9.16`: that version; a range (`>=3.8`) takes any Python that fits, ours.
            version = re.match(r"^(?:==?)?\s*(\d+\.\d+)", match["rest"].strip())
            return version[1] if version else None
    return None


def _check_requirements(lines: list[tuple[int, str]], where: str, *, unit: str = "line") -> None:
    """Environments registered before requirement lines were checked are checked again before a build."""
    try:
        requirements.check(lines, where, unit=unit)
    except ValueError as exc:
        raise BuildFailed(str(exc)) from None


def requirements_for(environment: EnvironmentSpec) -> tuple[list[str], list[str]]:
    """The pip requirement lines an environment needs, and notes for its timeline and build log.

    Azure's inference server packages are left out (the runtime replaces them). Raises BuildFailed naming a
    conda package that has no PyPI equivalent.
    """
    lines: list[str] = []
    notes: list[str] = []
    conda: Mapping[str, object] = environment.conda_file or {}
    dependencies: list[Any] = list(conda.get("dependencies") or [])  # type: ignore[call-overload]
    for index, dependency in enumerate(dependencies):
        if isinstance(dependency, Mapping):
            items = [
                (n, str(item).strip()) for n, item in enumerate(dependency.get("pip") or [], 1) if str(item).strip()
            ]
            _check_requirements(items, f"conda_file.dependencies[{index}].pip", unit="item")
            lines.extend(line for _, line in items)
            continue
        match = _CONDA_SPEC.match(str(dependency).strip())
        if match is None:
            raise BuildFailed(f"conda dependency {dependency!r} is not a package specification")
        name, rest = match["name"].lower(), match["rest"]
        if name == "python":
            continue  # chosen by python_for()
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
    numbered = requirements.numbered_lines(environment.pip_requirements)
    _check_requirements(numbered, "pip_requirements")
    lines.extend(line for _, line in numbered)
    replaced = [line for line in lines if requirement_name(line) in AZURE_SERVER]
    if replaced:
        names = ", ".join(sorted({str(requirement_name(line)) for line in replaced}))
        notes.append(f"{names}: Azure's inference server, replaced by Studio's runtime (not installed)")
        lines = [line for line in lines if line not in replaced]
    return lines, notes


# --- the Python an environment runs on


def _python_version(executable: str) -> tuple[int, int, int] | None:
    """(major, minor, micro) of an interpreter, or None if it does not run (a broken shim, say)."""
    try:
        done = subprocess.run(
            [executable, "-c", "import sys; print('%d %d %d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    parts = done.stdout.split()
    if done.returncode != 0 or len(parts) != 3:
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def python_candidates(version: str) -> list[str]:
    """Interpreters that may be Python `version` here: python3.X on PATH, one uv knows locally, pyenv's."""
    found: list[str] = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        found.append(on_path)
    try:
        done = subprocess.run(
            [*_uv(), "python", "find", "--no-python-downloads", version],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode == 0 and done.stdout.strip():
            found.append(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError):
        pass
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if pyenv.is_dir():
        for folder in sorted(pyenv.glob(f"{version}.*"), reverse=True):
            found.append(str(folder / "bin" / f"python{version}"))
    return list(dict.fromkeys(found))


def python_for(
    environment: EnvironmentSpec, *, candidates: Callable[[str], list[str]] = python_candidates
) -> tuple[str, str | None]:
    """The interpreter to build on, and a note when it is not the one the conda file asks for."""
    here = sys.version_info
    here_text = f"{here.major}.{here.minor}.{here.micro}"
    wanted = requested_python(environment)
    if wanted is None or wanted == f"{here.major}.{here.minor}":
        return sys.executable, None
    major, minor = (int(part) for part in wanted.split("."))
    if (major, minor) < RUNTIME_MIN_PYTHON:
        need = ".".join(str(part) for part in RUNTIME_MIN_PYTHON)
        return sys.executable, (
            f"conda file asks for python {wanted}; Studio's runtime needs Python {need} or newer, "
            f"so the environment uses Python {here_text}"
        )
    for executable in candidates(wanted):
        version = _python_version(executable)
        if version is not None and version[:2] == (major, minor):
            return executable, None
    return sys.executable, (
        f"conda file asks for python {wanted}, which this machine does not have (no working python{wanted} on "
        f"PATH, none that uv finds, none under pyenv); the environment uses Python {here_text}"
    )


# --- resolving as conda would: no newer than the pinned packages' time


def exact_pins(lines: list[str]) -> dict[str, str]:
    """{distribution: version} for the requirements pinned with `==` (a trailing `.*` kept)."""
    pins: dict[str, str] = {}
    for line in lines:
        name = requirement_name(line)
        match = _REQUIREMENT.match(line)
        if name is None or match is None:
            continue
        pin = _EXACT_PIN.match(match["rest"].strip())
        if pin:
            pins[name] = pin["version"]
    return pins


def index_url() -> str:
    """The package index uv installs from (UV_DEFAULT_INDEX / UV_INDEX_URL, else PyPI)."""
    return (os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL") or DEFAULT_INDEX).rstrip("/")


def _file_version(filename: str, name: str) -> str | None:
    stem = filename
    for suffix in (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".whl", ".egg"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if filename.endswith(".whl"):
        parts = stem.split("-")
        return parts[1] if len(parts) >= 5 and normalize(parts[0]) == name else None
    dist, _, version = stem.rpartition("-")
    return version if normalize(dist) == name else None


def release_time(name: str, version: str, *, client: httpx.Client) -> datetime | None:
    """When `name==version` (or the newest release of a `1.2.*` series) first appeared on the index."""
    response = client.get(
        f"{index_url()}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}, follow_redirects=True
    )
    response.raise_for_status()
    firsts: dict[str, datetime] = {}
    for item in response.json().get("files", []):
        uploaded = item.get("upload-time")
        file_version = _file_version(str(item.get("filename", "")), name)
        if not uploaded or file_version is None:
            continue
        matches = file_version.startswith(version[:-1]) if version.endswith("*") else file_version == version
        if matches:
            when = datetime.fromisoformat(str(uploaded).replace("Z", "+00:00"))
            firsts[file_version] = min(when, firsts.get(file_version, when))
    return max(firsts.values()) if firsts else None


def resolution_cutoff(lines: list[str]) -> tuple[datetime | None, str, str | None]:
    """(the newest pinned release's time, that pin, a note when the index could not say); unpinned packages
    resolve no newer than that time."""
    pins = exact_pins(lines)
    if not pins:
        return None, "", None
    times: dict[str, datetime] = {}
    try:
        with httpx.Client(timeout=INDEX_TIMEOUT) as client:
            for name, version in pins.items():
                when = release_time(name, version, client=client)
                if when is not None:
                    times[name] = when
    except (httpx.HTTPError, ValueError) as exc:
        note = f"could not read release dates from {index_url()} ({exc}); unpinned packages resolve to the newest"
        return None, "", note
    if not times:
        return None, "", None
    newest = max(times, key=lambda name: times[name])
    return times[newest], f"{newest}=={pins[newest]}", None


# --- building


def env_path(environment: EnvironmentSpec) -> Path:
    """Where the environment for this spec lives (built or not)."""
    return Path(settings.STUDIO_ENVS_DIR) / environment.spec_hash


def build_log_path(environment: EnvironmentSpec) -> Path:
    """The last build's log; kept beside the environment so a failed build's log survives too."""
    return Path(settings.STUDIO_ENVS_DIR) / f"{environment.spec_hash}.build.log"


def _ready(target: Path) -> bool:
    marker = target / READY_MARKER
    return marker.exists() and marker.read_text().split()[-1:] == [f"rules={BUILD_RULES}"]


def _cached(target: Path) -> BuiltEnvironment:
    if tenant.enabled() and target.stat().st_gid != tenant.group_id():
        tenant.seal(target)  # built before tenants ran it: made readable to them, and to them only
        tenant.open_path(target, Path(settings.STUDIO_ENVS_DIR).parent)
    return BuiltEnvironment(target, target / "bin" / "python", cached=True)


def ensure_environment(environment: EnvironmentSpec) -> BuiltEnvironment:
    """The built environment for `environment`, building it first unless a good build is cached."""
    root = Path(settings.STUDIO_ENVS_DIR)
    root.mkdir(parents=True, exist_ok=True)
    target = env_path(environment)
    if _ready(target):
        return _cached(target)
    with open(root / f"{environment.spec_hash}.lock", "w") as lock:
        # Another worker may be building this very spec: wait for it and use its result.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _ready(target):
            return _cached(target)
        return _build(environment, target)


class _Build:
    """One build's log and commands."""

    def __init__(self, log_path: Path, env: dict[str, str], builder: tenant.Tenant | None = None) -> None:
        self.log_path = log_path
        self.env = env
        self.builder = builder
        self.as_builder: dict[str, Any] = builder.popen_kwargs() if builder is not None else {}
        self.log = open(log_path, "w")  # closed by _build

    def give(self, path: Path) -> None:
        """A file the studio wrote for the build, handed to the user the build runs as."""
        if self.builder is not None:
            os.chown(path, self.builder.uid, self.builder.gid)

    def write(self, line: str) -> None:
        self.log.write(line + "\n")
        self.log.flush()

    def run(self, args: list[str], *, what: str) -> None:
        self.write("$ " + " ".join(args))
        done = subprocess.run(
            args,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env,
            timeout=1800,
            check=False,
            cwd=self.env["HOME"],
            **self.as_builder,
        )
        self.log.flush()
        if done.returncode != 0:
            raise BuildFailed(_failure_excerpt(self.log_path, what))


# The variables a build passes on from the worker: where to download from and through which proxy. Never the
# rest (DATABASE_URL, REDIS_URL, STUDIO_SECRET_KEY, cloud credentials, ...).
BUILD_PASS_THROUGH = (
    "UV_DEFAULT_INDEX",
    "UV_INDEX_URL",
    "UV_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_NATIVE_TLS",
    "UV_PYTHON_DOWNLOADS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)


def build_environment(work: Path) -> dict[str, str]:
    """The environment a build's commands run with: an allowlist, never the worker's whole environment."""
    env = {name: os.environ[name] for name in BUILD_PASS_THROUGH if name in os.environ}
    env.update(
        {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(work),
            "LANG": "C.UTF-8",
            "UV_CACHE_DIR": settings.STUDIO_UV_CACHE_DIR,
            "VIRTUAL_ENV": str(work),
        }
    )
    return env


def _python_for_tenant(python: str, builder: tenant.Tenant) -> str:
    """`python`, or the same Python version elsewhere on the machine that the tenant user can run."""
    if tenant.can_run(python, builder):
        return python
    version = _python_version(python)
    wanted = f"{version[0]}.{version[1]}" if version else f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in [f"/usr/bin/python{wanted}", f"/usr/local/bin/python{wanted}", *python_candidates(wanted)]:
        if Path(candidate).exists() and tenant.can_run(candidate, builder):
            return candidate
    raise BuildFailed(
        f"no Python {wanted} that the unprivileged user {tenant.TENANT_NAME!r} can run: {python} lies in a folder "
        f"others cannot read; install Python {wanted} system-wide, or set STUDIO_TENANT_ISOLATION=off"
    )


def _build(environment: EnvironmentSpec, target: Path) -> BuiltEnvironment:
    lines, notes = requirements_for(environment)
    builder = tenant.builder()
    python, python_note = python_for(environment)
    if builder is not None:
        python = _python_for_tenant(python, builder)
    if python_note:
        notes.append(python_note)
    work = target.with_name(f"{target.name}.building")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    work.mkdir(mode=0o700)
    env = build_environment(work)
    if builder is not None:
        # The build runs as the tenant user, in a folder of its own, with a download cache of its own.
        cache = Path(settings.STUDIO_ENVS_DIR) / ".uv-cache"
        cache.mkdir(mode=0o700, exist_ok=True)
        os.chown(cache, builder.uid, builder.gid)
        os.chown(work, builder.uid, builder.gid)
        env.update({"UV_CACHE_DIR": str(cache), "UV_LINK_MODE": "copy"})
        tenant.open_path(work, Path(settings.STUDIO_ENVS_DIR).parent)
    started = time.monotonic()
    build = _Build(build_log_path(environment), env, builder)
    try:
        build.write(f"environment {environment.name}:{environment.version} (spec {environment.spec_hash})")
        build.run(
            [*_uv(), "venv", "--quiet", "--allow-existing", "--python", python, str(work)],
            what="creating the virtual environment",
        )
        venv_python = work / "bin" / "python"
        runtime_requirements = work / "studio-runtime-requirements.txt"
        runtime_requirements.write_text((RUNTIME_DIR / "requirements.txt").read_text())
        build.give(runtime_requirements)
        build.run(
            [*_uv(), "pip", "install", "--python", str(venv_python), "-r", str(runtime_requirements)],
            what="installing the runtime's packages",
        )
        lines = _install(build, venv_python, work, lines, notes)
        _link_runtime(work)
        if builder is not None:
            tenant.seal(work)  # from here on root's: tenants run it, none can change it
        _import_check(build, venv_python, lines)
        build.write(f"built in {time.monotonic() - started:.1f} s")
    except BuildFailed:
        shutil.rmtree(work, ignore_errors=True)
        raise
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise BuildFailed(f"could not run the installer: {exc}") from exc
    finally:
        for note in notes:
            build.write(f"note: {note}")
        build.log.close()
    # The venv's scripts name their folder; uv venvs are relocatable enough for python -m use.
    work.rename(target)
    shutil.copyfile(build.log_path, target / "build.log")
    (target / READY_MARKER).write_text(f"{environment.spec_hash} rules={BUILD_RULES}")
    return BuiltEnvironment(target, target / "bin" / "python", cached=False, notes=tuple(notes))


def _install(build: _Build, python: Path, work: Path, lines: list[str], notes: list[str]) -> list[str]:
    """Install the user's requirements, as of the pinned packages' time; returns the lines installed.

    An Azure package with no release for this Python is left out with a note (as the runtime replaces what
    Azure's server needed); a resolution that the date rule makes impossible is retried without it.
    """
    if not lines:
        return lines
    cutoff, pinned, note = resolution_cutoff(lines)
    if note:
        notes.append(note)
    if cutoff is not None and not uv_can_exempt_packages():
        notes.append("this uv has no --exclude-newer-package (a newer uv has it): resolved without the date rule")
        cutoff = None
    if cutoff is not None:
        build.write(f"resolving unpinned packages as of {cutoff:%Y-%m-%d}, when {pinned} was released")
    for _ in range(5):
        requirements = work / "studio-requirements.txt"
        requirements.write_text("\n".join(lines) + "\n")
        build.give(requirements)
        args = [*_uv(), "pip", "install", "--python", str(python), "-r", str(requirements)]
        if cutoff is not None:
            # Pinned packages and the runtime's own are taken as they are; the rest no newer than the pins.
            later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            args += ["--exclude-newer", (cutoff + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")]
            exempt = [*exact_pins(lines), "httptools", "uvloop"]
            for name in exempt:
                args += ["--exclude-newer-package", f"{name}={later}"]
        try:
            build.run(args, what="installing the environment's packages")
            return lines
        except BuildFailed as failure:
            missing = _azure_package_without_release(str(failure), lines)
            if missing is not None:
                notes.append(f"{missing} has no release for this Python; left out (Studio's runtime replaces it)")
                lines = [line for line in lines if requirement_name(line) != missing]
                continue
            if cutoff is not None and "No solution found" in str(failure):
                notes.append(
                    f"the requirements do not resolve as of {cutoff:%Y-%m-%d} (when {pinned} was released); "
                    "resolved with the newest releases instead"
                )
                cutoff = None
                continue
            raise
    raise BuildFailed("installing the environment's packages failed: too many retries (see the build log)")


def _azure_package_without_release(message: str, lines: list[str]) -> str | None:
    """A requested azure* package that uv says has no distribution for this Python, if that is the failure."""
    if not re.search(r"no wheels with a matching|requires-python|no matching distribution|Python>=", message, re.I):
        return None
    requested = {requirement_name(line) for line in lines}
    for name in re.findall(r"\b(azure[a-z0-9._-]*)", message.lower()):
        name = normalize(name.rstrip(".,:"))
        if name in requested:
            return name
    return None


IMPORT_CHECK = r"""
import importlib, importlib.metadata as md, json, sys, traceback

SKIP = {"test", "tests", "testing", "doc", "docs", "example", "examples", "benchmarks", "bin", "share"}

def modules(dist):
    names = []
    for path in dist.files or []:
        parts = path.parts
        if not parts or parts[0].endswith((".dist-info", ".data", ".egg-info", ".pth")) or parts[0] == "..":
            continue
        if len(parts) == 1 and path.suffix in (".py", ".so", ".pyd"):
            names.append(parts[0].split(".")[0])
        elif len(parts) == 2 and parts[1] == "__init__.py":
            names.append(parts[0])
    if not names:  # a namespace package (azureml.core): its packages one level down
        for path in dist.files or []:
            parts = path.parts
            if len(parts) == 3 and parts[2] == "__init__.py":
                names.append(parts[0] + "." + parts[1])
    if not names:
        names = (dist.read_text("top_level.txt") or "").split()
    return [n for n in dict.fromkeys(names) if n and not n.startswith("_") and n.split(".")[0] not in SKIP]

results = []
for name in sys.argv[1:]:
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        results.append({"package": name, "module": None, "error": "not installed"})
        continue
    for module in modules(dist):
        try:
            importlib.import_module(module)
        except BaseException as exc:
            lines = traceback.format_exception_only(type(exc), exc)
            results.append({"package": name, "module": module, "error": lines[-1].strip()})
            break
import runtime.main  # the server itself must load too
print("STUDIO-IMPORT-CHECK " + json.dumps(results))
"""


def _import_check(build: _Build, python: Path, lines: list[str]) -> None:
    """Import every requested package in the new environment (its own process); a failure fails the build."""
    names = [name for name in dict.fromkeys(requirement_name(line) for line in lines) if name]
    build.write(f"$ import check: {', '.join(names) or 'the runtime only'}")
    with tempfile.TemporaryDirectory() as empty:  # not the studio's folder: nothing of ours on sys.path
        if build.builder is not None:
            os.chmod(empty, 0o711)
        try:
            done = subprocess.run(
                [str(python), "-c", IMPORT_CHECK, *names],
                capture_output=True,
                text=True,
                cwd=empty,
                env=build.env,
                timeout=IMPORT_CHECK_TIMEOUT_S,
                check=False,
                **build.as_builder,
            )
        except subprocess.TimeoutExpired:
            raise BuildFailed(
                f"the import check of the new environment took longer than {IMPORT_CHECK_TIMEOUT_S} s"
            ) from None
    build.write((done.stdout + done.stderr).strip())
    marker = next((line for line in done.stdout.splitlines() if line.startswith("STUDIO-IMPORT-CHECK ")), None)
    if done.returncode != 0 or marker is None:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise BuildFailed(f"the new environment cannot import its packages: {last}")
    failures = json.loads(marker.removeprefix("STUDIO-IMPORT-CHECK "))
    if failures:
        first = failures[0]
        what = f"import {first['module']}" if first["module"] else "it"
        others = f" (and {len(failures) - 1} more; see the build log)" if len(failures) > 1 else ""
        raise BuildFailed(
            f"package {first['package']} does not import in the new environment: {what}: {first['error']}{others}"
        )


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


def _failure_excerpt(log_path: Path, what: str, lines: int = 25) -> str:
    """A headline (what failed and the installer's reason), then the installer's last lines."""
    text = log_path.read_text(errors="replace").splitlines()
    kept = [line for line in text if line.strip() and not line.startswith("$ ")]
    tail = kept[-lines:]
    reason = next((line.strip(" ×╰─▶") for line in reversed(tail) if "Because" in line or "error:" in line), "")
    if not reason:
        reason = tail[-1].strip(" ×╰─▶") if tail else "see the build log"
    return f"{what} failed: {reason}\n" + "\n".join(tail)

"""The self-contained runtime a pod's `studio-runtime` init container copies in (finding 3: images without
`studio-infsrv` could not serve). The bundle is laid out as deploy/runtime.Dockerfile lays it out, and its
launcher runs as the inference-server container's command would: with another Python than the studio's, one
that has none of the runtime's dependencies installed, as a foreign image's would.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps.endpoints.backends.manifests import RUNTIME_LAUNCHER

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "deploy" / "runtime-bundle" / "studio-infsrv"
SITE = Path(next(p for p in sys.path if p.endswith("site-packages")))
SCORE_PY = """
import json, os

def init():
    global model
    model = open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.txt")).read().strip()

def run(raw_data):
    return {"model": model, "echo": json.loads(raw_data)}
"""


def foreign_python() -> str | None:
    """A Python of the same version as the studio's, but another installation without httptools (the image's)."""
    tag = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (f"/usr/bin/{tag}", f"/usr/local/bin/{tag}"):
        if Path(candidate).exists() and Path(candidate).resolve() != Path(sys.executable).resolve():
            probe = subprocess.run([candidate, "-c", "import httptools"], capture_output=True)
            if probe.returncode != 0:
                return candidate
    return None


def bundle(root: Path) -> Path:
    """The bundle's layout: bin/studio-infsrv, src/runtime, lib/cp3XY with the compiled dependencies."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(LAUNCHER, root / "bin" / "studio-infsrv")
    shutil.copytree(REPO / "runtime", root / "src" / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    for package in ("httptools", "uvloop"):
        shutil.copytree(SITE / package, root / "lib" / tag / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root / "bin" / "studio-infsrv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def image_path(tmp_path: Path, python: str) -> str:
    """A PATH with only the image's Python on it (as `python3`) and the shell's basics."""
    bin_dir = tmp_path / "image-bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(python)
    return f"{bin_dir}:/bin:/usr/bin" if python.startswith("/usr/bin") else f"{bin_dir}:/bin"


def test_the_launcher_is_the_path_the_manifests_run() -> None:
    assert RUNTIME_LAUNCHER == "/var/studio-runtime/bin/studio-infsrv"
    assert os.access(LAUNCHER, os.X_OK)


def test_an_image_without_the_runtimes_packages_serves_score_py_through_the_bundle(tmp_path: Path) -> None:
    python = foreign_python()
    if python is None:
        pytest.skip("no second Python installation without httptools on this machine to play the image's")
    launcher = bundle(tmp_path / "studio-runtime")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text(SCORE_PY)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.txt").write_text("iris-v3\n")
    port = free_port()
    env = {
        "PATH": image_path(tmp_path, python),
        "HOME": str(tmp_path),
        "AZUREML_MODEL_DIR": str(tmp_path / "model"),
        "STUDIO_DRAIN_S": "2",
    }
    command = [str(launcher), "--entry_script", str(tmp_path / "code" / "score.py"), "--port", str(port)]
    log = open(tmp_path / "server.log", "wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        answer = None
        deadline = time.monotonic() + 60
        while answer is None and time.monotonic() < deadline and process.poll() is None:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request(
                    "POST", "/score", body=json.dumps({"x": 1}), headers={"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                answer = (response.status, json.loads(response.read()))
            except (ConnectionError, OSError):
                time.sleep(0.2)
        assert answer == (200, {"model": "iris-v3", "echo": {"x": 1}}), (tmp_path / "server.log").read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def test_an_image_without_python_is_told_so(tmp_path: Path) -> None:
    launcher = bundle(tmp_path / "studio-runtime")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = subprocess.run(
        ["/bin/sh", str(launcher), "--port", "5001"], env={"PATH": str(empty)}, capture_output=True, text=True
    )
    assert result.returncode == 127
    assert "this image has no python3 or python on its PATH" in result.stderr


def test_a_python_the_bundle_has_no_build_for_is_named(tmp_path: Path) -> None:
    launcher = bundle(tmp_path / "studio-runtime")
    other = next(
        (p for p in ("/root/.pyenv/versions/3.12.1/bin/python3.12", "/usr/bin/python3.12") if Path(p).exists()), None
    )
    if other is None:
        pytest.skip("no Python other than the studio's version on this machine")
    result = subprocess.run(
        [str(launcher), "--port", "5001"], env={"PATH": image_path(tmp_path, other)}, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "the image's python3 is cp312; the runtime bundle supports cp311" in result.stderr

"""What a pod's `storage-initializer` runs (`python -m runtime.storage_initializer`), as a real subprocess
against a local HTTP server serving model and code archives: the layout it leaves, and how it fails.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from apps.endpoints.backends.manifests import STORAGE_INITIALIZER_COMMAND
from runtime.storage_initializer import model_subdir

SCORE_PY = "def init():\n    pass\n\ndef run(raw):\n    return raw\n"


def archive(files: dict[str, bytes], *, links: dict[str, str] | None = None, mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


MODEL = archive({"model.pkl": b"weights-v1"})
CODE = archive({"score.py": SCORE_PY.encode(), "lib/helper.py": b"X = 1\n"})


class Studio:
    """The studio's download endpoint, as far as the initializer can tell: archives, errors, cut answers."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.failures_left: dict[str, int] = {}
        studio = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                studio.requests.append(self.path)
                path = self.path.lstrip("/")
                if studio.failures_left.get(path, 0) > 0:
                    studio.failures_left[path] -= 1
                    return self._send(502, b"bad gateway", "text/plain")
                if path == "forbidden":
                    body = json.dumps({"error": {"message": "download token: expired (older than 21600 s)"}})
                    return self._send(403, body.encode(), "application/json")
                if path == "partial":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(MODEL)))
                    self.end_headers()
                    self.wfile.write(MODEL[: len(MODEL) // 2])  # then the connection drops
                    return None
                payload = {
                    "model": MODEL,
                    "code": CODE,
                    "plain-tar": archive({"score.py": SCORE_PY.encode()}, mode="w"),
                    "traversal": archive({"../../etc/evil.txt": b"owned"}),
                    "absolute": archive({"/tmp/evil.txt": b"owned"}),
                    "symlink": archive({"score.py": b""}, links={"secrets": "/etc/shadow"}),
                }.get(path)
                if payload is None:
                    return self._send(404, b"{}", "application/json")
                return self._send(200, payload, "application/gzip")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def studio() -> Iterator[Studio]:
    server = Studio()
    yield server
    server.close()


def initialize(
    tmp_path: Path, *, model: str = "", code: str = "", entry: str = "", studio: Studio | None = None
) -> subprocess.CompletedProcess[str]:
    base = studio.url if studio else ""
    env = {
        "PATH": os.environ["PATH"],
        "STUDIO_MODEL_URL": f"{base}/{model}" if model and studio else model,
        "STUDIO_MODEL_DIR": str(tmp_path / "azureml-models" / "iris" / "3"),
        "STUDIO_CODE_URL": f"{base}/{code}" if code else "",
        "STUDIO_CODE_DIR": str(tmp_path / "code"),
        "STUDIO_ENTRY_SCRIPT": entry,
    }
    command = [sys.executable, *STORAGE_INITIALIZER_COMMAND[1:], "--attempts", "3", "--retry-delay", "0"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_model_and_code_are_laid_out_where_the_inference_server_looks(studio: Studio, tmp_path: Path) -> None:
    result = initialize(tmp_path, model="model", code="code", entry="score.py", studio=studio)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "azureml-models" / "iris" / "3" / "model.pkl").read_bytes() == b"weights-v1"
    assert (tmp_path / "code" / "score.py").read_text() == SCORE_PY
    assert (tmp_path / "code" / "lib" / "helper.py").read_text() == "X = 1\n"
    assert "storage-initializer: model ready: 1 files" in result.stdout
    assert "storage-initializer: code ready: 2 files" in result.stdout
    assert not list(tmp_path.rglob("*.partial"))


def test_an_uncompressed_tar_is_accepted_too(studio: Studio, tmp_path: Path) -> None:
    result = initialize(tmp_path, code="plain-tar", studio=studio)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "code" / "score.py").read_text() == SCORE_PY


def test_a_refused_token_fails_at_once_with_the_studios_reason(studio: Studio, tmp_path: Path) -> None:
    result = initialize(tmp_path, model="forbidden", studio=studio)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "storage-initializer: ERROR download of model refused (HTTP 403: download token: expired (older than 21600 s))"
    )
    assert studio.requests == ["/forbidden"]  # not retried: a new try cannot change the answer


def test_a_server_error_is_retried_and_then_succeeds(studio: Studio, tmp_path: Path) -> None:
    studio.failures_left["model"] = 2
    result = initialize(tmp_path, model="model", studio=studio)
    assert result.returncode == 0, result.stderr
    assert studio.requests == ["/model"] * 3
    assert result.stdout.count("download of model failed: HTTP 502") == 2


def test_an_archive_entry_outside_its_folder_is_refused_and_nothing_is_written(studio: Studio, tmp_path: Path) -> None:
    for path, words in (
        ("traversal", "'../../etc/evil.txt' points outside its folder"),
        ("absolute", "'/tmp/evil.txt' points outside its folder"),
        ("symlink", "'secrets' is not a regular file or folder"),
    ):
        result = initialize(tmp_path, code=path, studio=studio)
        assert result.returncode == 1, path
        assert words in result.stderr
        assert not (tmp_path / "code").exists()
        assert not list(tmp_path.rglob("evil.txt")) and not list(tmp_path.rglob("*.partial"))
    assert studio.requests == ["/traversal", "/absolute", "/symlink"]  # a bad archive is not fetched again


def test_a_download_cut_short_is_retried_and_never_leaves_half_a_folder(studio: Studio, tmp_path: Path) -> None:
    result = initialize(tmp_path, model="partial", studio=studio)
    assert result.returncode == 1
    assert studio.requests == ["/partial"] * 3
    assert "download of model failed after 3 attempts" in result.stderr
    assert not (tmp_path / "azureml-models" / "iris" / "3").exists()
    assert not list(tmp_path.rglob("*.partial"))


def test_an_unreachable_studio_fails_after_its_attempts(tmp_path: Path) -> None:
    result = initialize(tmp_path, model="http://127.0.0.1:9/nothing-listens-here")
    assert result.returncode == 1
    assert "download of model failed after 3 attempts" in result.stderr


def test_a_url_that_is_not_one_is_named(tmp_path: Path) -> None:
    result = initialize(tmp_path, model="studio.local/api/v1/downloads/abc")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "storage-initializer: ERROR download of model: unknown url type: 'studio.local/api/v1/downloads/abc'"
    )


def test_a_scoring_script_missing_from_the_code_is_named(studio: Studio, tmp_path: Path) -> None:
    result = initialize(tmp_path, code="code", entry="scoring/main.py", studio=studio)
    assert result.returncode == 1
    assert "scoring_script 'scoring/main.py' is not in the code folder" in result.stderr


def test_bad_flags_are_named() -> None:
    result = subprocess.run(
        [sys.executable, *STORAGE_INITIALIZER_COMMAND[1:], "--attempts", "0"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "--attempts must be at least 1, got 0" in result.stderr


def test_it_imports_nothing_of_the_studio() -> None:
    check = (
        "import sys, runtime.storage_initializer; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'apps', 'studio', 'celery'}))"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("asset", "folder"),
    [("azureml:iris:3", "iris/3"), ("azureml:my model:1", "my_model/1"), ("iris@latest", "iris/latest")],
)
def test_the_model_folder_is_azures_name_and_version(asset: str, folder: str) -> None:
    assert str(model_subdir(asset)) == folder

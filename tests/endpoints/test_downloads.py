"""Signed downloads: what a Kubernetes pod's storage initializer fetches from the studio, with no login.

The archive is unpacked by the very command the init container runs (`python -m runtime.storage_initializer`),
in a real subprocess against a live server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import time_machine

from apps.endpoints.backends.manifests import STORAGE_INITIALIZER_COMMAND
from apps.endpoints.backends.signed_urls import sign_download
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


def _initialize(
    live_server: Any, tmp_path: Path, *, model_token: str = "", code_token: str = ""
) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ["PATH"],
        "STUDIO_MODEL_URL": f"{live_server.url}/api/v1/downloads/{model_token}" if model_token else "",
        "STUDIO_MODEL_DIR": str(tmp_path / "model"),
        "STUDIO_CODE_URL": f"{live_server.url}/api/v1/downloads/{code_token}" if code_token else "",
        "STUDIO_CODE_DIR": str(tmp_path / "code"),
    }
    return subprocess.run(
        [sys.executable, *STORAGE_INITIALIZER_COMMAND[1:]], env=env, capture_output=True, text=True, timeout=60
    )


def test_storage_initializer_lays_out_the_model_from_a_signed_url(live_server: Any, tmp_path: Path) -> None:
    model = factories.model("iris", content=b"weights-v1")
    token = sign_download("model", model.asset_id, ttl_s=600)

    result = _initialize(live_server, tmp_path, model_token=token)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model" / "model.pkl").read_bytes() == b"weights-v1"
    assert "model ready: 1 files" in result.stdout


def test_storage_initializer_fetches_the_deployment_code(live_server: Any, tmp_path: Path) -> None:
    endpoint = factories.endpoint()
    code = factories.upload_folder({"score.py": factories.SCORE_PY, "lib/helper.py": "X = 1\n"})
    deployment = factories.deployment(endpoint, code=code)
    token = sign_download("code", str(deployment.uid), ttl_s=600)

    result = _initialize(live_server, tmp_path, code_token=token)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "code" / "score.py").read_text() == factories.SCORE_PY
    assert (tmp_path / "code" / "lib" / "helper.py").read_text() == "X = 1\n"


def test_download_needs_no_login_but_a_valid_token(client: Any) -> None:
    model = factories.model("iris")
    token = sign_download("model", model.asset_id, ttl_s=600)

    assert client.get(f"/api/v1/downloads/{token}").status_code == 200
    forged = client.get(f"/api/v1/downloads/{token[:-2]}xx")
    assert forged.status_code == 403
    assert forged.json()["error"]["message"] == "download token: invalid signature"


def test_download_token_expires(client: Any) -> None:
    model = factories.model("iris")
    with time_machine.travel("2026-01-01 00:00:00+00:00", tick=False):
        token = sign_download("model", model.asset_id, ttl_s=60)
    with time_machine.travel("2026-01-01 00:02:00+00:00", tick=False):
        response = client.get(f"/api/v1/downloads/{token}")
    assert response.status_code == 403
    assert response.json()["error"]["message"].startswith("download token: expired")


def test_download_of_a_deleted_model_version_is_a_clear_404(client: Any) -> None:
    token = sign_download("model", "azureml:gone:3", ttl_s=600)
    response = client.get(f"/api/v1/downloads/{token}")
    assert response.status_code == 404
    assert "gone" in response.json()["error"]["message"]

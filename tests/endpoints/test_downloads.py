"""Downloads for a Kubernetes pod's storage initializer: digests named by the pod template, a credential from
the deployment's Secret, no login, and no expiry but the deployment's own.

The archive is unpacked by the very command the init container runs (`python -m runtime.storage_initializer`),
in a real subprocess against a live server, with the environment the rendered manifests give it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import time_machine
import yaml
from django.test import AsyncClient

from apps.endpoints import services
from apps.endpoints.backends.manifests import (
    STORAGE_INITIALIZER_COMMAND,
    TOKEN_KEY,
    build_manifests,
    options_from_settings,
)
from apps.endpoints.models import Deployment
from apps.endpoints.specs import deployment_spec
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


def pod_environment(deployment: Deployment, *, studio_url: str, previous_token: str = "") -> dict[str, str]:
    """What the storage-initializer container of the deployment's current pod template gets in its environment."""
    spec = deployment_spec(deployment)
    manifests = {
        m["kind"]: m for m in build_manifests(spec, options_from_settings(spec, previous_token=previous_token))
    }
    init = next(
        c
        for c in manifests["Deployment"]["spec"]["template"]["spec"]["initContainers"]
        if c["name"] == "storage-initializer"
    )
    secret = {key: base64.b64decode(value).decode() for key, value in manifests["Secret"]["data"].items()}
    env = {item["name"]: item.get("value", "") for item in init["env"]}
    env[TOKEN_KEY] = secret.get(TOKEN_KEY, "")
    return {
        key: value.replace("http://pods.invalid", studio_url) if isinstance(value, str) else value
        for key, value in env.items()
    }


def initialize(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **env,
        "PATH": os.environ["PATH"],
        "STUDIO_MODEL_DIR": str(tmp_path / "model") if env.get("STUDIO_MODEL_DIR") else "",
        "STUDIO_CODE_DIR": str(tmp_path / "code") if env.get("STUDIO_CODE_DIR") else "",
    }
    command = [sys.executable, *STORAGE_INITIALIZER_COMMAND[1:], "--attempts", "1"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def pods_reach_studio(settings: Any) -> None:
    settings.STUDIO_KUBE_STUDIO_URL = "http://pods.invalid"


def test_a_pod_lays_out_the_model_and_code_its_template_names(
    live_server: Any, tmp_path: Path, pods_reach_studio: None
) -> None:
    code = factories.upload_folder({"score.py": factories.SCORE_PY, "lib/helper.py": "X = 1\n"})
    deployment = factories.deployment(factories.endpoint(), code=code)

    result = initialize(pod_environment(deployment, studio_url=live_server.url), tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model" / "model.pkl").read_bytes() == b"weights"
    assert (tmp_path / "code" / "score.py").read_text() == factories.SCORE_PY
    assert (tmp_path / "code" / "lib" / "helper.py").read_text() == "X = 1\n"


def test_a_pod_created_a_week_after_the_last_apply_still_starts(
    live_server: Any, tmp_path: Path, pods_reach_studio: None
) -> None:
    """Finding 1: an HPA scale-out, an eviction or a drain long after the apply used to fail with a 403."""
    with time_machine.travel("2026-01-01 00:00:00+00:00", tick=True) as clock:
        deployment = factories.deployment(factories.endpoint())
        env = pod_environment(deployment, studio_url=live_server.url)
        clock.shift(7 * 24 * 3600)

        result = initialize(env, tmp_path)

    assert result.returncode == 0, result.stderr
    assert "model ready: 1 files" in result.stdout and "code ready: 1 files" in result.stdout


def test_a_pod_of_the_previous_template_gets_its_own_code_not_the_new_one(
    live_server: Any, tmp_path: Path, pods_reach_studio: None
) -> None:
    """Finding 2: restarted pods of the old template used to fetch whatever the deployment had now."""
    deployment = factories.deployment(factories.endpoint())
    old_env = pod_environment(deployment, studio_url=live_server.url)
    new_code = factories.upload_folder({"score.py": factories.SCORE_PY + "# v2\n"})
    deployment = services.deployment_update(
        deployment=deployment,
        changes={"code_configuration": {"code": f"upload:{new_code.uid}", "scoring_script": "score.py"}},
    )
    # The Secret now holds the credential re-signed on apply (keeping the digests of the previous spec).
    new_env = pod_environment(deployment, studio_url=live_server.url, previous_token=old_env[TOKEN_KEY])
    assert new_env["STUDIO_CODE_URL"] != old_env["STUDIO_CODE_URL"]

    old_pod = initialize({**old_env, TOKEN_KEY: new_env[TOKEN_KEY]}, tmp_path / "old")
    new_pod = initialize(new_env, tmp_path / "new")

    assert old_pod.returncode == 0 and new_pod.returncode == 0, old_pod.stderr + new_pod.stderr
    assert (tmp_path / "old" / "code" / "score.py").read_text() == factories.SCORE_PY
    assert (tmp_path / "new" / "code" / "score.py").read_text().endswith("# v2\n")


def test_deleting_the_deployment_revokes_its_credential(
    live_server: Any, tmp_path: Path, pods_reach_studio: None
) -> None:
    deployment = factories.deployment(factories.endpoint())
    env = pod_environment(deployment, studio_url=live_server.url)
    Deployment.objects.filter(pk=deployment.pk).delete()

    result = initialize(env, tmp_path)

    assert result.returncode == 1
    assert f"download credential: revoked (deployment {deployment.uid} was deleted)" in result.stderr


def test_a_credential_reaches_only_its_own_deployments_digests(client: Any, pods_reach_studio: None) -> None:
    endpoint = factories.endpoint()
    mine = factories.deployment(endpoint, "blue")
    other = factories.deployment(
        endpoint, "green", code=factories.upload_folder({"score.py": factories.SCORE_PY + "# other\n"})
    )
    token = options_from_settings(deployment_spec(mine)).download_token
    digest = deployment_spec(other).code_digest

    response = client.get(f"/api/v1/downloads/code/{digest}", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 403
    assert response.json()["error"]["message"] == f"download credential: not valid for code {digest}"


def test_a_download_needs_a_genuine_credential(client: Any) -> None:
    deployment = factories.deployment(factories.endpoint())
    spec = deployment_spec(deployment)
    url = f"/api/v1/downloads/model/{spec.model_uid}"
    token = options_from_settings(spec).download_token

    assert client.get(url).status_code == 401
    assert "send the deployment's STUDIO_DOWNLOAD_TOKEN" in client.get(url).json()["error"]["message"]
    forged = client.get(url, HTTP_AUTHORIZATION=f"Bearer {token[:-2]}xx")
    assert forged.status_code == 403
    assert forged.json()["error"]["message"] == "download credential: invalid signature"


def test_manifests_rendered_for_gitops_fetch_while_the_endpoint_exists(
    live_server: Any, tmp_path: Path, pods_reach_studio: None
) -> None:
    """A render of a deployment the studio does not hold: its credential is revoked with the endpoint."""
    endpoint = factories.endpoint()
    text = services.deployment_render(endpoint=endpoint, spec=factories.deployment_spec("gitops"))
    assert not Deployment.objects.filter(name="gitops").exists()
    documents = {doc["kind"]: doc for doc in yaml.safe_load_all(text)}
    init = documents["Deployment"]["spec"]["template"]["spec"]["initContainers"][1]
    env = {item["name"]: item.get("value", "") for item in init["env"]}
    env[TOKEN_KEY] = base64.b64decode(documents["Secret"]["data"][TOKEN_KEY]).decode()
    env = {key: value.replace("http://pods.invalid", live_server.url) for key, value in env.items()}

    assert initialize(env, tmp_path / "a").returncode == 0
    services.endpoint_delete(endpoint=endpoint)
    refused = initialize(env, tmp_path / "b")
    assert refused.returncode == 1 and "download credential: revoked (endpoint" in refused.stderr


def test_the_archive_streams_from_an_async_iterator_with_its_length_up_front(pods_reach_studio: None) -> None:
    """Finding 4: Django under ASGI buffers a synchronous streaming response whole before the first byte."""
    weights = os.urandom(3 * 1024 * 1024 + 17)
    model = factories.model("big", content=weights)
    deployment = factories.deployment(factories.endpoint(), model=f"azureml:{model.name}:{model.version}")
    spec = deployment_spec(deployment)
    token = options_from_settings(spec).download_token

    async def fetch() -> Any:
        response = await AsyncClient().get(
            f"/api/v1/downloads/model/{spec.model_uid}", headers={"Authorization": f"Bearer {token}"}
        )
        body = b"".join([chunk async for chunk in response.streaming_content])
        return response, body

    response, body = asyncio.run(fetch())

    assert response.status_code == 200 and response.is_async
    assert response["Content-Type"] == "application/x-tar"
    assert int(response["Content-Length"]) == len(body)
    with tarfile.open(fileobj=BytesIO(body)) as archive:
        assert archive.getnames() == ["model.pkl"]
        assert archive.extractfile("model.pkl").read() == weights  # type: ignore[union-attr]

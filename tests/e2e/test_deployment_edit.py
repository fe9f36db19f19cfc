"""In a real browser against a real `studio up`: an endpoint and its deployment created from YAML files, and a
deployment's environment variable and model version edited from its Edit page while a bounded load runs
through the gateway: the rolling update finishes with no failed request.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import STUDIO, Session, Studio

pytestmark = pytest.mark.e2e

READY_TIMEOUT_MS = 240_000
LOAD_MAX_REQUESTS = 20_000  # the load stops by itself after this many requests or LOAD_MAX_S
LOAD_MAX_S = 300
SCORE_PY = """
import os
from pathlib import Path

def init():
    global weights
    weights = next(Path(os.environ["AZUREML_MODEL_DIR"]).rglob("weights.txt")).read_text().strip()

def run(raw_data):
    return {"mode": os.environ.get("MODE", ""), "weights": weights}
"""


def _cli_env(studio: Studio) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("STUDIO_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env["STUDIO_HOME"] = str(studio.home)
    return env


def _cli(studio: Studio, *args: str) -> str:
    done = subprocess.run(
        [STUDIO, *args], env=_cli_env(studio), capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"studio {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture
def cleanup(studio: Studio) -> Iterator[list[str]]:
    """Endpoints to delete at the end (the CLI waits until their instances have stopped)."""
    names: list[str] = []
    yield names
    for name in names:
        subprocess.run(
            [STUDIO, "online-endpoint", "delete", "-n", name, "--yes"],
            env=_cli_env(studio),
            timeout=180,
            check=False,
            capture_output=True,
        )


def _azure_files(root: Path, endpoint: str, model: str) -> Path:
    """The files `studio online-endpoint/online-deployment create -f` would take; the code folder zipped."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "endpoint.yml").write_text(f"name: {endpoint}\nauth_mode: key\ndescription: made from YAML\n")
    (root / "blue-deployment.yml").write_text(
        f"name: blue\nendpoint_name: {endpoint}\nmodel: {model}\n"
        "code_configuration:\n  code: ./onlinescoring/\n  scoring_script: score.py\n"
        "environment:\n  image: python:3.11\n"
        "environment_variables:\n  MODE: v1\n"
        "instance_type: Standard_DS1_v2\ninstance_count: 1\n"
    )
    with zipfile.ZipFile(root / "onlinescoring.zip", "w") as archive:
        archive.writestr("score.py", SCORE_PY)
    return root


def _create_from_yaml(session: Session, files: Path, endpoint: str, extra: tuple[Path, ...] = ()) -> None:
    page = session.page
    session.goto("/endpoints/")
    page.get_by_role("link", name="Create from YAML").click()
    page.get_by_label("Endpoint YAML").set_input_files(str(files / "endpoint.yml"))
    page.get_by_label("Deployment YAML").set_input_files(str(files / "blue-deployment.yml"))
    page.get_by_label("Files and folders").set_input_files([str(files / "onlinescoring.zip"), *map(str, extra)])
    page.get_by_role("button", name="Create from YAML").click()
    page.wait_for_url(f"{session.studio.url}/endpoints/{endpoint}/")


def _axe_content(session: Session) -> list[str]:
    """Serious and critical axe violations inside the page's content (these pages' own markup)."""
    session.axe_serious()  # loads axe-core into the page
    result = session.page.evaluate("async () => await axe.run('#content', {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _wait_succeeded(session: Session, deployment: str) -> None:
    card = session.page.locator("article.card", has=session.page.get_by_role("heading", name=deployment, exact=True))
    card.locator("[data-state-of]").filter(has_text="Succeeded").wait_for(timeout=READY_TIMEOUT_MS)


def _credentials(studio: Studio, endpoint: str) -> tuple[str, str]:
    import json

    shown = json.loads(_cli(studio, "online-endpoint", "show", "-n", endpoint))
    keys = json.loads(_cli(studio, "online-endpoint", "get-credentials", "-n", endpoint))
    return shown["scoring_uri"], keys["primaryKey"]


def _model(studio: Studio, tmp: Path, name: str, weights: str) -> None:
    folder = tmp / f"{name}-{weights}"
    folder.mkdir()
    (folder / "weights.txt").write_text(weights)
    _cli(studio, "model", "create", "-n", name, "-p", str(folder))


def test_create_endpoint_and_deployment_from_yaml_files_in_the_browser(
    session: Session, tmp_path: Path, cleanup: list[str]
) -> None:
    page = session.page
    files = _azure_files(tmp_path / "azure", "yaml-ep", "azureml:yaml-model:1")
    # An inline model with its file, as the CLI would upload it.
    (files / "weights.txt").write_text("inline")
    yml = (files / "blue-deployment.yml").read_text()
    (files / "blue-deployment.yml").write_text(
        yml.replace("model: azureml:yaml-model:1", "model:\n  path: ./weights.txt")
    )
    _create_from_yaml(session, files, "yaml-ep", (files / "weights.txt",))
    cleanup.append("yaml-ep")
    assert "Creating endpoint yaml-ep with deployment blue from YAML." in page.locator("#messages").inner_text()
    assert page.locator("#endpoint-description").inner_text() == "made from YAML"
    _wait_succeeded(session, "blue")
    session.shot("endpoint-details-from-yaml")
    scoring_uri, key = _credentials(session.studio, "yaml-ep")
    answer = httpx.post(scoring_uri, json={"data": 1}, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert answer.status_code == 200 and answer.json() == {"mode": "v1", "weights": "inline"}

    # A second deployment from its own YAML file on the endpoint's page: it takes no traffic.
    green = files / "green"
    green.mkdir()
    (green / "green-deployment.yml").write_text(
        (files / "blue-deployment.yml").read_text().replace("name: blue", "name: green")
    )
    page.get_by_role("link", name="Create deployment from YAML").click()
    page.get_by_label("Deployment YAML").set_input_files(str(green / "green-deployment.yml"))
    page.get_by_label("Files and folders").set_input_files([str(files / "onlinescoring.zip")])
    page.get_by_role("button", name="Create deployment").click()
    # The model file is missing: the form names it and creates nothing.
    alert = page.locator("#deployment-yaml-form .errorlist")
    assert "green-deployment.yml: model.path: ./weights.txt was not uploaded; add weights.txt" in alert.inner_text()
    page.get_by_label("Deployment YAML").set_input_files(str(green / "green-deployment.yml"))
    page.get_by_label("Files and folders").set_input_files(
        [str(files / "onlinescoring.zip"), str(files / "weights.txt")]
    )
    page.get_by_role("button", name="Create deployment").click()
    page.wait_for_url(f"{session.studio.url}/endpoints/yaml-ep/")
    _wait_succeeded(session, "green")
    assert "<td>green</td><td>0 %</td>" in page.locator("#traffic-summary").inner_html()
    # What was made can be downloaded as YAML again.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download YAML").first.click()
    assert "name: yaml-ep" in Path(download.value.path()).read_text()
    assert _axe_content(session) == []


def test_edit_environment_variable_and_model_version_rolls_out_with_no_failed_request(
    session: Session, tmp_path: Path, cleanup: list[str]
) -> None:
    page = session.page
    studio = session.studio
    _model(studio, tmp_path, "edit-model", "v1")
    _model(studio, tmp_path, "edit-model", "v2")
    files = _azure_files(tmp_path / "azure", "edit-ep", "azureml:edit-model:1")
    _create_from_yaml(session, files, "edit-ep")
    cleanup.append("edit-ep")
    _wait_succeeded(session, "blue")
    scoring_uri, key = _credentials(studio, "edit-ep")

    answers: list[dict[str, str]] = []
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        deadline = time.monotonic() + LOAD_MAX_S
        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {key}"}) as client:
            for _ in range(LOAD_MAX_REQUESTS):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    answer = client.post(scoring_uri, json={"data": 1})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if 200 <= answer.status_code < 300:
                    answers.append(answer.json())
                else:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
                time.sleep(0.02)

    client = threading.Thread(target=load, daemon=True)
    client.start()
    try:
        page.get_by_role("link", name="Edit blue").click()
        page.get_by_label("Environment variables").fill("MODE=v2")
        page.get_by_label("Model").select_option("azureml:edit-model:2")
        page.get_by_role("button", name="Review changes").click()
        diff = page.locator("#deployment-diff pre").inner_text()
        assert "-  MODE: v1" in diff and "+  MODE: v2" in diff
        assert "-model: azureml:edit-model:1" in diff and "+model: azureml:edit-model:2" in diff
        session.shot("deployment-edit-review")
        assert _axe_content(session) == []
        page.get_by_role("button", name="Apply and roll out").click()
        page.wait_for_url(f"{studio.url}/endpoints/edit-ep/")
        assert "Updating deployment blue (generation 2)" in page.locator("#messages").inner_text()
        _wait_succeeded(session, "blue")
        # Once it has succeeded (and the gateways have reloaded, within a second) every answer is the new version's.
        time.sleep(1.5)
        seen = len(answers)
        deadline = time.monotonic() + 30
        while len(answers) < seen + 20 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        client.join(timeout=30)
    assert failures == []
    assert len(answers) > 50
    assert answers[0] == {"mode": "v1", "weights": "v1"}
    assert answers[seen:] and all(a == {"mode": "v2", "weights": "v2"} for a in answers[seen:])
    session.goto("/endpoints/edit-ep/deployments/blue/spec/")
    spec = page.locator("#deployment-spec-yaml").inner_text()
    assert "model: azureml:edit-model:2" in spec and "MODE: v2" in spec

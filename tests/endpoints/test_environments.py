"""Environments for the local backend: conda/pip mapping, real uv builds, caching, failures, isolation."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from apps.endpoints import environments, reconcile, services
from apps.endpoints.backends.base import EnvironmentSpec
from apps.endpoints.environments import BuildFailed, ensure_environment, exact_pins, python_for, requirements_for
from apps.endpoints.models import Environment, Instance
from tests import factories
from tests.endpoints.conftest import score

HERE = f"{sys.version_info.major}.{sys.version_info.minor}"


def env_spec(*, conda: dict[str, Any] | None = None, pip: str = "", spec_hash: str = "test") -> EnvironmentSpec:
    return EnvironmentSpec(
        name="env", version="1", image="", conda_file=conda, pip_requirements=pip, spec_hash=spec_hash
    )


def test_conda_packages_map_to_pypi_names_and_pins() -> None:
    conda = {
        "name": "model-env",
        "channels": ["conda-forge"],
        "dependencies": [
            f"python={HERE}",
            "pip=23.0",
            "numpy=2.3.1",
            "pandas=2.2",
            "conda-forge::scikit-learn>=1.4",
            "pytorch=2.3.0=py3.11_cpu_0",
            {"pip": ["inference-schema[numpy-support]==1.8", "joblib"]},
        ],
    }
    lines, notes = requirements_for(env_spec(conda=conda, pip="requests>=2  # for calls\n# comment\n"))
    assert lines == [
        "numpy==2.3.1",
        "pandas==2.2.*",
        "scikit-learn>=1.4",
        "torch==2.3.0",
        "inference-schema[numpy-support]==1.8",
        "joblib",
        "requests>=2",
    ]
    assert notes == ["conda file pins pip =23.0; the environment uses the installer's own"]


def test_a_python_older_than_the_runtime_supports_is_replaced_with_a_note_naming_the_python_used() -> None:
    python, note = python_for(env_spec(conda={"dependencies": ["python=3.8", "pip"]}), candidates=lambda v: [])
    assert python == sys.executable
    assert note == (
        "conda file asks for python 3.8; Studio's runtime needs Python 3.10 or newer, "
        f"so the environment uses Python {sys.version.split()[0]}"
    )


def test_the_requested_python_is_used_when_the_machine_has_it() -> None:
    # Our own interpreter stands for a python3.X found on PATH, by uv or under pyenv.
    other = "3.99"
    found, note = python_for(
        env_spec(conda={"dependencies": [f"python={HERE}"]}), candidates=lambda v: ["/nonexistent/python"]
    )
    assert (found, note) == (sys.executable, None)
    missing, note = python_for(env_spec(conda={"dependencies": [f"python={other}"]}), candidates=lambda v: [])
    assert missing == sys.executable
    assert note is not None and note.startswith(f"conda file asks for python {other}, which this machine does not")
    broken, note = python_for(
        env_spec(conda={"dependencies": ["python=3.12"]}), candidates=lambda v: ["/bin/false", "/nonexistent/python3"]
    )
    assert broken == sys.executable and note is not None and "does not have" in note


def test_a_python_range_takes_the_studios_python_without_a_note() -> None:
    assert python_for(env_spec(conda={"dependencies": ["python>=3.8"]})) == (sys.executable, None)


def test_azure_server_packages_are_replaced_by_the_runtime_with_a_note() -> None:
    conda = {
        "dependencies": [
            "python=3.9",
            "numpy=1.23.5",
            {"pip": ["azureml-defaults==1.53.0", "azureml-inference-server-http", "azureml-core==1.53.0"]},
        ]
    }
    lines, notes = requirements_for(env_spec(conda=conda))
    assert lines == ["numpy==1.23.5", "azureml-core==1.53.0"]
    assert notes == [
        "azureml-defaults, azureml-inference-server-http: Azure's inference server, replaced by Studio's runtime "
        "(not installed)"
    ]


def test_pins_set_the_date_unpinned_packages_resolve_to() -> None:
    assert exact_pins(["scikit-learn==1.2.2", "numpy", "pandas==1.5.*", "joblib>=1", "Inference_Schema[x]==1.5"]) == {
        "scikit-learn": "1.2.2",
        "pandas": "1.5.*",
        "inference-schema": "1.5",
    }


def test_a_conda_package_with_no_pypi_equivalent_is_an_image_build_failure_naming_it() -> None:
    with pytest.raises(BuildFailed, match="conda package 'cudatoolkit' has no PyPI equivalent"):
        requirements_for(env_spec(conda={"dependencies": ["python=3.11", "cudatoolkit=11.8"]}))


def test_the_environment_runs_the_runtime_but_cannot_import_the_studio(settings: Any, envs_dir: Path) -> None:
    settings.STUDIO_ENVS_DIR = envs_dir
    built = ensure_environment(env_spec(spec_hash="isolation"))
    assert (built.path / "build.log").exists()
    check = (
        "import importlib.util as u, runtime, azureml.contrib.services.aml_request as r;"
        "print([u.find_spec(m) is None for m in ('django', 'apps', 'studio', 'celery')])"
    )
    done = subprocess.run([str(built.python), "-c", check], capture_output=True, text=True, cwd="/", check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True, True, True, True]"


def test_concurrent_builds_of_one_spec_share_one_build(settings: Any, tmp_path: Path) -> None:
    settings.STUDIO_ENVS_DIR = tmp_path / "envs"
    spec = env_spec(spec_hash="shared")
    results: list[environments.BuiltEnvironment] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_environment(spec))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(results) == 3
    assert sorted(result.cached for result in results) == [False, True, True]
    assert len({result.path for result in results}) == 1


@pytest.mark.django_db
def test_a_real_pip_requirement_is_installed_and_importable_by_score_py(local: Path) -> None:
    env = factories.environment("six-env", pip_requirements="six==1.16.0")
    code = factories.upload_folder(
        {"score.py": ("import six\ndef init():\n    pass\ndef run(raw):\n    return {'six': six.__version__}\n")}
    )
    endpoint = factories.endpoint("ep1")
    deployment = factories.deployment(endpoint, "blue", code=code, environment=f"azureml:{env.name}:{env.version}")
    started = time.monotonic()
    while deployment.state not in ("Succeeded", "Failed") and time.monotonic() - started < 300:
        reconcile.reconcile(deployment.pk)
        deployment.refresh_from_db()
    assert deployment.state == "Succeeded", deployment.message
    row = Instance.objects.get(deployment=deployment)
    assert score(row.address, {}).json() == {"six": "1.16.0"}
    assert (
        "six==1.16.0"
        in environments.build_log_path(
            environments.EnvironmentSpec(
                name=env.name,
                version=env.version,
                image="",
                conda_file=None,
                pip_requirements="",
                spec_hash=env.spec_hash,
            )
        ).read_text()
    )


@pytest.mark.django_db
def test_a_requirement_that_does_not_exist_fails_with_image_build_failure_and_the_installers_message(
    local: Path, settings: Any
) -> None:
    env = factories.environment("bad-env", pip_requirements="studio-no-such-package-4f2a==1.0")
    endpoint = factories.endpoint("ep1")
    deployment = factories.deployment(endpoint, "blue", environment=f"azureml:{env.name}:{env.version}")
    reconcile.reconcile(deployment.pk)
    deployment.refresh_from_db()
    assert deployment.state == "Failed"
    assert deployment.reason == "ImageBuildFailure"
    assert "studio-no-such-package-4f2a" in deployment.message
    assert "not found" in deployment.message.lower() or "no solution" in deployment.message.lower()
    # A failed build is not kept as good: nothing under the spec's folder, and the next try builds again.
    assert not (Path(settings.STUDIO_ENVS_DIR) / env.spec_hash).exists()
    assert "studio-no-such-package-4f2a" in (Path(settings.STUDIO_ENVS_DIR) / f"{env.spec_hash}.build.log").read_text()
    assert not Instance.objects.filter(deployment=deployment).exists()
    event = deployment.events.get(reason="ImageBuildFailure")
    assert event.type == "Warning" and event.container == "environment"


# --- environments as Azure users write them (real builds from PyPI; uv's cache makes repeats quick)

SKLEARN_SCORE_PY = """\
import json, os
import numpy as np
import sklearn
from sklearn.linear_model import LinearRegression

def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "training.json")) as f:
        data = json.load(f)
    model = LinearRegression().fit(np.array(data["X"]), np.array(data["y"]))

def run(raw_data):
    X = np.array(json.loads(raw_data)["data"])
    return {"predictions": model.predict(X).round(6).tolist(), "sklearn": sklearn.__version__, "numpy": np.__version__}
"""

# y = 2x + 1
TRAINING = b'{"X": [[0], [1], [2], [3]], "y": [1, 3, 5, 7]}'


def deploy_and_wait(env_spec_doc: dict[str, Any]) -> Any:
    env = services.environment_create(spec={"name": "azure-env", **env_spec_doc})
    upload = factories.upload_file(TRAINING, name="training.json")
    model = services.model_create(spec={"name": "linear", "path": f"upload:{upload.uid}"})
    code = factories.upload_folder({"score.py": SKLEARN_SCORE_PY})
    endpoint = factories.endpoint("ep1")
    deployment = factories.deployment(
        endpoint,
        "blue",
        code=code,
        model=f"azureml:{model.name}:{model.version}",
        environment=f"azureml:{env.name}:{env.version}",
    )
    started = time.monotonic()
    while deployment.state not in ("Succeeded", "Failed") and time.monotonic() - started < 900:
        reconcile.reconcile(deployment.pk)
        deployment.refresh_from_db()
    return deployment


SKLEARN_122_CONDA = {
    "name": "model-env",
    "channels": ["conda-forge"],
    "dependencies": [f"python={HERE}", "scikit-learn=1.2.2", "pip", {"pip": ["joblib"]}],
}


@pytest.mark.django_db
@pytest.mark.timeout(1200)
def test_scikit_learn_1_2_2_with_numpy_unpinned_gets_a_numpy_it_can_load_and_scores(local: Path) -> None:
    deployment = deploy_and_wait({"conda_file": SKLEARN_122_CONDA})
    assert deployment.state == "Succeeded", deployment.message
    answer = score(Instance.objects.get(deployment=deployment).address, {"data": [[4], [10]]}).json()
    assert answer["predictions"] == [9.0, 21.0]
    assert answer["sklearn"] == "1.2.2"
    assert answer["numpy"].startswith("1."), answer


AZURE_SAMPLE_CONDA = {
    "name": "model-env",
    "channels": ["conda-forge"],
    "dependencies": [
        "python=3.9",
        "numpy=1.23.5",
        "pip=23.0.1",
        "scikit-learn=1.2.2",
        "scipy=1.10.1",
        {"pip": ["azureml-defaults==1.53.0", "inference-schema[numpy-support]==1.5.1", "joblib==1.2.0"]},
    ],
}


@pytest.mark.django_db
@pytest.mark.timeout(1200)
def test_the_usual_azure_conda_file_with_azureml_defaults_and_python_3_9_builds_and_scores(local: Path) -> None:
    deployment = deploy_and_wait({"conda_file": AZURE_SAMPLE_CONDA})
    assert deployment.state == "Succeeded", deployment.message
    answer = score(Instance.objects.get(deployment=deployment).address, {"data": [[4]]}).json()
    assert answer == {"predictions": [9.0], "sklearn": "1.2.2", "numpy": "1.23.5"}
    notes = list(deployment.events.filter(reason="EnvironmentNote").values_list("message", flat=True))
    assert "azureml-defaults: Azure's inference server, replaced by Studio's runtime (not installed)" in notes, notes
    python_notes = [note for note in notes if note.startswith("conda file asks for python 3.9")]
    assert len(python_notes) == 1, notes  # said once, and it names the Python used
    assert f"uses Python {sys.version.split()[0]}" in python_notes[0]


@pytest.mark.django_db
@pytest.mark.timeout(1200)
def test_a_package_that_does_not_import_in_the_new_environment_fails_the_build_naming_it(
    local: Path, settings: Any
) -> None:
    conda = {"dependencies": [f"python={HERE}", "scikit-learn=1.2.2", {"pip": ["numpy>=2"]}]}
    deployment = deploy_and_wait({"conda_file": conda})
    assert deployment.state == "Failed"
    assert deployment.reason == "ImageBuildFailure"
    first_line = deployment.message.splitlines()[0]
    assert first_line.startswith("package scikit-learn does not import in the new environment: import sklearn: ")
    assert "numpy" in first_line, first_line
    env = Environment.objects.get(name="azure-env")
    assert not (Path(settings.STUDIO_ENVS_DIR) / env.spec_hash).exists()  # not cached: the next try builds again

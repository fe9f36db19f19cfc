"""Environments for the local backend: conda/pip mapping, real uv builds, caching, failures, isolation."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from apps.endpoints import environments, reconcile
from apps.endpoints.backends.base import EnvironmentSpec
from apps.endpoints.environments import BuildFailed, ensure_environment, requirements_for
from apps.endpoints.models import Instance
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


def test_a_python_pin_that_differs_from_the_interpreter_is_reported() -> None:
    _, notes = requirements_for(env_spec(conda={"dependencies": ["python=3.8", "pip"]}))
    assert len(notes) == 1
    assert notes[0].startswith("conda file asks for python =3.8; the environment uses Python 3.")


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

"""--worker_count, AML_APP_ROOT/AZUREML_ENTRY_SCRIPT/AZUREML_SOURCE_DIRECTORY, and the azureml import shims."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from tests.runtime.conftest import Server, runtime_env

PID_SCRIPT = """
    import os

    def init():
        print("init in", os.getpid())

    def run(data):
        return {"pid": os.getpid()}
"""


def _wait_for_ready_workers(server: Server, count: int, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = re.findall(r"Worker with pid (\d+) ready for serving traffic", server.log())
        if len(pids) >= count:
            return pids
        time.sleep(0.1)
    raise AssertionError(server.log())


def test_worker_count_starts_that_many_workers_each_running_init_once(start_runtime) -> None:
    server = start_runtime(PID_SCRIPT, args=["--worker_count", "2"])
    pids = _wait_for_ready_workers(server, 2)
    assert len(set(pids)) == 2
    inits = re.findall(r"azmlinfsrv.print - init in (\d+)", server.log())
    assert sorted(inits) == sorted(pids)
    seen = {server.request("POST", "/score", "x").json()["pid"] for _ in range(20)}
    assert seen <= {int(p) for p in pids}


def test_worker_count_comes_from_the_environment_too(start_runtime) -> None:
    server = start_runtime(PID_SCRIPT, env={"WORKER_COUNT": "2"})
    assert len(set(_wait_for_ready_workers(server, 2))) == 2


def test_stopping_the_server_stops_every_worker(start_runtime) -> None:
    server = start_runtime(PID_SCRIPT, args=["--worker_count", "2"])
    pids = [int(p) for p in _wait_for_ready_workers(server, 2)]
    assert server.stop() == 0
    for pid in pids:
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_entry_script_from_environment_is_relative_to_the_app_root_and_source_dir_is_importable(start_runtime) -> None:
    server = start_runtime(
        None,
        files={
            "src/score.py": """
            import helpers

            def init():
                pass

            def run(data):
                return helpers.shout(data)
        """,
            "lib/helpers.py": "def shout(text):\n    return text.upper()\n",
        },
        env={"AZUREML_ENTRY_SCRIPT": "src/score.py", "AZUREML_SOURCE_DIRECTORY": "lib"},
    )
    answer = server.request("POST", "/score", "quiet")
    assert answer.json() == "QUIET"


def test_azureml_contrib_services_imports_resolve_to_the_runtime() -> None:
    code = (
        "from runtime import compat; compat.install()\n"
        "from azureml.contrib.services.aml_request import AMLRequest, rawhttp\n"
        "from azureml.contrib.services.aml_response import AMLResponse\n"
        "import runtime.request, runtime.response\n"
        "assert AMLRequest is runtime.request.AMLRequest and rawhttp is runtime.request.rawhttp\n"
        "assert AMLResponse is runtime.response.AMLResponse\n"
        "import azureml, azureml.contrib\n"
        "assert getattr(azureml, '__file__', None) is None, 'azureml must stay a namespace package'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=runtime_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_azureml_shims_coexist_with_other_azureml_namespace_packages(tmp_path) -> None:
    other = tmp_path / "site" / "azureml" / "core"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("NAME = 'core'\n")
    code = (
        "from runtime import compat; compat.install()\n"
        "import azureml.core\n"
        "from azureml.contrib.services.aml_response import AMLResponse\n"
        "import runtime.response\n"
        "assert azureml.core.NAME == 'core' and AMLResponse is runtime.response.AMLResponse\n"
        "print('ok')\n"
    )
    env = runtime_env({"PYTHONPATH": f"{runtime_env()['PYTHONPATH']}:{tmp_path / 'site'}"})
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_real_flask_style_azureml_contrib_services_is_overridden_by_the_runtime(tmp_path) -> None:
    services = tmp_path / "site" / "azureml" / "contrib" / "services"
    services.mkdir(parents=True)
    for folder in (services.parent.parent, services.parent, services):
        (folder / "__init__.py").write_text("")
    (services / "aml_request.py").write_text("def rawhttp(f):\n    return f\nclass AMLRequest:\n    pass\n")
    (services / "aml_response.py").write_text("class AMLResponse:\n    pass\n")
    code = (
        "from runtime import compat; compat.install()\n"
        "from azureml.contrib.services.aml_request import rawhttp\n"
        "from azureml.contrib.services.aml_response import AMLResponse\n"
        "import runtime.request, runtime.response\n"
        "assert rawhttp is runtime.request.rawhttp and AMLResponse is runtime.response.AMLResponse\n"
        "print('ok')\n"
    )
    env = runtime_env({"PYTHONPATH": f"{runtime_env()['PYTHONPATH']}:{tmp_path / 'site'}"})
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_config_file_sets_what_the_environment_does_not(start_runtime) -> None:
    server = start_runtime(
        PID_SCRIPT,
        files={"cfg.json": '{"SCORING_TIMEOUT_MS": 1234, "SERVICE_NAME": "from-file"}'},
        args=["--config_file", "cfg.json"],
    )
    assert "Scoring timeout is set to 1234" in server.wait_for_log("Scoring timeout")
    assert server.get("/swagger.json").json()["info"]["title"] == "from-file"

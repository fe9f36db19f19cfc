"""What users see when things go wrong: raising run(), slow run(), failing init(), bad routes and headers."""

from __future__ import annotations

from tests.runtime.conftest import Server

RAISING = """
    import time

    def init():
        pass

    def run(data):
        if data == "slow":
            time.sleep(3)
            return "late"
        if data == "boom":
            raise ValueError("the model exploded")
        return {"ok": data}
"""


def test_run_that_raises_returns_500_with_run_function_failed_header(start_runtime) -> None:
    server = start_runtime(RAISING)
    answer = server.request("POST", "/score", "boom")
    assert answer.status == 500
    assert answer.json() == {"message": "An unexpected error occurred in scoring script. Check the logs for more info."}
    assert answer.headers["x-ms-run-function-failed"] == "True"
    assert "x-request-id" in answer.headers
    log = server.wait_for_log("POST /score 500")
    assert "E [" in log and "Encountered Exception: Traceback" in log
    assert 'raise ValueError("the model exploded")' in log
    assert "ValueError: the model exploded" in log


def test_run_past_scoring_timeout_returns_500_and_the_worker_still_answers(start_runtime) -> None:
    server = start_runtime(RAISING, env={"SCORING_TIMEOUT_MS": "300"})
    answer = server.request("POST", "/score", "slow")
    assert answer.status == 500
    assert answer.json() == {"message": "Scoring timeout after 300 ms"}
    assert answer.headers["x-ms-run-function-failed"] == "True"
    after = server.request("POST", "/score", "quick")
    assert after.status == 200
    assert after.json() == {"ok": "quick"}
    assert server.get("/").text == "Healthy"
    assert "Scoring timeout is set to 300" in server.log()


def test_init_that_raises_exits_3_with_traceback_and_model_listing(start_runtime) -> None:
    server = start_runtime("""
        def init():
            raise RuntimeError("cannot find model.pkl")

        def run(data):
            return data
    """)
    assert server.proc.wait(timeout=30) == 3
    log = server.log()
    assert "E [" in log and "azmlinfsrv - User's init function failed" in log
    assert "RuntimeError: cannot find model.pkl" in log
    assert "Model Directory Contents:" in log
    assert "model/" in log and "    weights.txt" in log
    assert "ready for serving traffic" not in log


def test_script_that_fails_to_import_exits_3(start_runtime) -> None:
    server = start_runtime("import not_a_real_module_xyz\n\ndef init():\n    pass\n\ndef run(data):\n    return data\n")
    assert server.proc.wait(timeout=30) == 3
    log = server.log()
    assert "User's init function failed" in log
    assert "ModuleNotFoundError: No module named 'not_a_real_module_xyz'" in log


def test_script_without_run_exits_3(start_runtime) -> None:
    server = start_runtime("def init():\n    pass\n")
    assert server.proc.wait(timeout=30) == 3
    assert "does not have a run() function defined" in server.log()


def test_script_without_init_exits_3(start_runtime) -> None:
    server = start_runtime("def run(data):\n    return data\n")
    assert server.proc.wait(timeout=30) == 3
    assert "does not have a init() function defined" in server.log()


def test_failing_init_with_several_workers_exits_3(start_runtime) -> None:
    server = start_runtime(
        "def init():\n    raise ValueError('bad')\n\ndef run(data):\n    return data\n", args=["--worker_count", "2"]
    )
    assert server.proc.wait(timeout=30) == 3
    assert "Reason: Worker failed to boot." in server.log()


def test_unknown_path_returns_404_json(start_runtime) -> None:
    server = start_runtime(RAISING)
    answer = server.get("/predict")
    assert answer.status == 404
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "message": "The requested URL was not found on the server. If you entered the URL "
        "manually please check your spelling and try again."
    }


def test_unsupported_method_returns_405_json(start_runtime) -> None:
    server = start_runtime(RAISING)
    for method, path in (("PUT", "/score"), ("DELETE", "/score"), ("POST", "/")):
        answer = server.request(method, path, "x")
        assert answer.status == 405, (method, path)
        assert answer.json() == {"message": "The method is not allowed for the requested URL."}


def test_x_request_id_over_100_characters_returns_431(start_runtime) -> None:
    server = start_runtime(RAISING)
    answer = server.request("POST", "/score", "hi", {"x-request-id": "a" * 101})
    assert answer.status == 431
    assert answer.json() == {"message": "x-request-id must not exceed 100 characters"}
    assert "x-request-id" not in answer.headers
    assert "ok" not in answer.text


def test_client_request_id_over_100_characters_returns_431(start_runtime) -> None:
    server = start_runtime(RAISING)
    answer = server.request("POST", "/score", "hi", {"x-ms-client-request-id": "c" * 101})
    assert answer.status == 431
    assert answer.json() == {"message": "x-ms-request-id and x-ms-client-request-id must not exceed 100 characters"}


def test_bad_port_flag_exits_1_with_a_message(start_runtime) -> None:
    import subprocess
    import sys

    from tests.runtime.conftest import runtime_env

    result = subprocess.run(
        [sys.executable, "-m", "runtime", "--entry_script", "score.py", "--port", "70000"],
        env=runtime_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Specified port '70000' is invalid" in result.stderr


def test_busy_port_exits_1_with_a_message(start_runtime) -> None:
    first: Server = start_runtime(RAISING)
    second = start_runtime(RAISING, args=["--port", str(first.port)], wait=False)
    assert second.proc.wait(timeout=30) == 1
    assert f"Cannot listen on 127.0.0.1:{first.port}" in second.log()

"""An undecorated run(data): the body as text in, json.dumps of the result out, Azure's headers around it."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.runtime.conftest import Server

SCRIPT = """
    import json
    import os

    def init():
        global weight
        with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "weights.txt")) as f:
            weight = float(f.read())
        print("model loaded, weight", weight)

    def run(data):
        print("scoring", data)
        if data == "none":
            return None
        if data == "text":
            return "a string"
        if data == "nan":
            return [float("nan")]
        if data == "object":
            return object()
        if data.startswith("{"):
            return {"received": json.loads(data)}
        return {"data": data, "weight": weight}
"""


@pytest.fixture
def server(start_runtime) -> Server:
    return start_runtime(SCRIPT)


def test_liveness_probe_says_healthy(server: Server) -> None:
    answer = server.get("/")
    assert answer.status == 200
    assert answer.text == "Healthy"
    assert answer.headers["content-type"] == "text/html; charset=utf-8"


def test_post_passes_the_body_as_text_and_answers_json(server: Server) -> None:
    answer = server.request("POST", "/score", "hello", {"Content-Type": "application/json"})
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"data": "hello", "weight": 0.5}
    assert answer.headers["x-ms-run-function-failed"] == "False"
    assert re.fullmatch(r"\d+\.\d{3}", answer.headers["x-ms-run-fn-exec-ms"])


def test_get_passes_the_query_string_as_a_json_string(server: Server) -> None:
    answer = server.get("/score?a=1&b=x&b=2")
    assert answer.status == 200
    assert answer.json() == {"received": {"a": 1, "b": ["x", 2]}}


def test_none_result_is_an_empty_json_object(server: Server) -> None:
    assert server.request("POST", "/score", "none").text == "{}"


def test_string_result_is_json_encoded_again(server: Server) -> None:
    assert server.request("POST", "/score", "text").text == '"a string"'


def test_nan_is_written_as_nan(server: Server) -> None:
    assert server.request("POST", "/score", "nan").text == "[NaN]"


def test_result_that_cannot_be_serialized_returns_500_internal_error(server: Server) -> None:
    answer = server.request("POST", "/score", "object")
    assert answer.status == 500
    assert answer.json() == {"message": "An unexpected internal error occurred. Check the logs for more info."}
    assert answer.headers["x-ms-run-function-failed"] == "False"
    assert "is not JSON serializable" in server.wait_for_log("is not JSON serializable")


def test_options_answers_200_without_calling_run(server: Server) -> None:
    answer = server.request("OPTIONS", "/score")
    assert answer.status == 200
    assert answer.body == b""
    assert "scoring" not in server.log()


def test_body_that_is_not_utf8_returns_400(server: Server) -> None:
    answer = server.request("POST", "/score", b"\xff\xfe\xfa")
    assert answer.status == 400
    assert answer.json()["message"].startswith("Input cannot be decoded as UTF-8:")


def test_x_request_id_is_echoed(server: Server) -> None:
    answer = server.request("POST", "/score", "hi", {"x-request-id": "my-trace-1"})
    assert answer.headers["x-request-id"] == "my-trace-1"
    assert answer.headers["x-ms-request-id"] == "my-trace-1"


def test_x_request_id_is_generated_as_a_uuid_when_missing(server: Server) -> None:
    answer = server.request("POST", "/score", "hi")
    assert uuid.UUID(answer.headers["x-request-id"]).version == 4
    assert answer.headers["x-ms-request-id"] == answer.headers["x-request-id"]


def test_client_request_id_and_trace_id_are_echoed(server: Server) -> None:
    answer = server.request("POST", "/score", "hi", {"x-ms-client-request-id": "client-7", "TraceId": "office-1"})
    assert answer.headers["x-ms-client-request-id"] == "client-7"
    assert answer.headers["x-ms-request-id"] == "client-7"
    assert answer.headers["traceid"] == "office-1"


def test_legacy_x_ms_request_id_fills_the_client_request_id(server: Server) -> None:
    answer = server.request("POST", "/score", "hi", {"x-ms-request-id": "legacy-3"})
    assert answer.headers["x-ms-request-id"] == "legacy-3"
    assert answer.headers["x-ms-client-request-id"] == "legacy-3"
    assert "x-ms-request-id header has been deprecated" in server.wait_for_log("deprecated")


def test_answers_carry_the_server_version(server: Server) -> None:
    assert server.get("/").headers["x-ms-server-version"].startswith("studio-infsrv/")


def test_print_in_the_script_becomes_a_log_line_with_utc_time_and_pid(server: Server) -> None:
    server.request("POST", "/score", "logged-input")
    log = server.wait_for_log("scoring logged-input")
    line = next(line for line in log.splitlines() if "scoring logged-input" in line)
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} I \[{server.proc.pid}\] azmlinfsrv.print - "
        r"scoring logged-input",
        line,
    )
    assert "azmlinfsrv.print - model loaded, weight 0.5" in log


def test_each_request_gets_an_access_line_with_method_path_status_time_and_size(server: Server) -> None:
    server.get("/score?x=1")
    log = server.wait_for_log("GET /score?x=1 200")
    assert re.search(r" I \[\d+\] azmlinfsrv - GET /score\?x=1 200 \d+\.\d{3}ms \d+$", log, re.MULTILINE)


def test_startup_banner_shows_settings_and_routes(server: Server) -> None:
    log = server.log()
    assert "Studio Inferencing HTTP server v" in log
    assert "Server Settings" in log and "Server Routes" in log
    assert f"Score:          POST  127.0.0.1:{server.port}/score" in log
    assert f"Worker with pid {server.proc.pid} ready for serving traffic" in log


def test_keep_alive_connection_serves_several_requests(server: Server) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for i in range(3):
            conn.request("POST", "/score", body=f"n{i}")
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == f'{{"data": "n{i}", "weight": 0.5}}'.encode()
    finally:
        conn.close()

"""/swagger.json from the user's file or generated, the Open Inference Protocol health routes, /metrics."""

from __future__ import annotations

import json

from tests.runtime.conftest import Server

PLAIN = """
    def init():
        pass

    def run(data):
        return {"echo": data}
"""
USER_SWAGGER = {"swagger": "2.0", "info": {"title": "my own service", "version": "7"}, "paths": {}}


def test_user_swagger_file_in_the_app_root_is_served(start_runtime) -> None:
    server = start_runtime(PLAIN, files={"swagger.json": json.dumps(USER_SWAGGER)})
    answer = server.get("/swagger.json")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == USER_SWAGGER
    assert "Loaded user's swagger file for version [2]" in server.log()


def test_user_swagger3_file_serves_version_3_and_2_stays_generated(start_runtime) -> None:
    server = start_runtime(PLAIN, files={"swagger3.json": json.dumps({"openapi": "3.0.0", "mine": True})})
    assert server.get("/swagger.json?version=3").json() == {"openapi": "3.0.0", "mine": True}
    assert server.get("/swagger.json?version=2").json()["swagger"] == "2.0"


def test_undecorated_script_gets_the_minimal_swagger(start_runtime) -> None:
    server = start_runtime(PLAIN)
    document = server.get("/swagger.json").json()
    assert document["info"]["title"] == "ML service"
    assert set(document["paths"]) == {"/", "/score", "/swagger.json"}
    assert document["definitions"]["ServiceInput"] == {"type": "object", "example": {}}


def test_swagger_title_and_prefix_come_from_the_environment(start_runtime) -> None:
    server = start_runtime(PLAIN, env={"SERVICE_NAME": "churn", "SERVICE_PATH_PREFIX": "api/v1"})
    document = server.get("/swagger.json?version=3").json()
    assert document["info"]["title"] == "churn"
    assert "/api/v1/score" in document["paths"]


def test_bad_swagger_version_returns_404_with_azure_message(start_runtime) -> None:
    server = start_runtime(PLAIN)
    answer = server.get("/swagger.json?version=7")
    assert answer.status == 404
    assert answer.json() == {"message": "Swagger version [7] is not valid. Supported versions: [2, 3, 3.1]."}


def test_v2_health_live_and_ready_answer_200(start_runtime) -> None:
    server = start_runtime(PLAIN)
    assert server.get("/v2/health/live").status == 200
    ready = server.get("/v2/health/ready")
    assert ready.status == 200
    assert ready.json() == {"ready": True}


def test_metrics_count_requests_by_status_and_expose_latency_and_in_flight(start_runtime) -> None:
    server: Server = start_runtime(PLAIN)
    server.request("POST", "/score", "a")
    server.request("POST", "/score", "b")
    server.get("/nope")
    answer = server.get("/metrics")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = answer.text
    assert f'infsrv_requests_total{{method="POST",route="/score",status="200",pid="{server.proc.pid}"}} 2' in text
    assert 'route="other",status="404"' in text
    assert "# TYPE infsrv_request_duration_seconds histogram" in text
    assert f'infsrv_request_duration_seconds_count{{route="/score",pid="{server.proc.pid}"}} 2' in text
    assert f'infsrv_requests_in_flight{{pid="{server.proc.pid}"}} 1' in text


def test_cors_origin_from_the_flag_is_allowed(start_runtime) -> None:
    server = start_runtime(PLAIN, args=["--access_control_allow_origins", "https://a.example, https://b.example"])
    allowed = server.request(
        "OPTIONS", "/score", headers={"Origin": "https://b.example", "Access-Control-Request-Method": "POST"}
    )
    assert allowed.status == 200
    assert allowed.headers["access-control-allow-origin"] == "https://b.example"
    other = server.request("POST", "/score", "x", {"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_head_on_the_liveness_probe_has_no_body(start_runtime) -> None:
    server = start_runtime(PLAIN)
    answer = server.request("HEAD", "/")
    assert answer.status == 200
    assert answer.body == b""

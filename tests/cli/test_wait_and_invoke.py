"""Waiting for a deployment to settle (progress on stderr, Failed → exit 1, --all-traffic), invoking an
endpoint through its scoring URI, and reading logs.

No worker runs next to the live studio here, so the test moves the deployment's state the way the
reconcile task does (compare-and-set on the row plus a timeline event) while the CLI waits.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from apps.endpoints import services
from apps.endpoints.models import Deployment, Endpoint
from tests import factories
from tests.cli.conftest import STUDIO, Result, assert_error

pytestmark = pytest.mark.django_db(transaction=True)

Studio = Callable[..., Result]


def start_cli(args: tuple[str, ...], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [STUDIO, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def settle(name: str, state: str, *, reason: str = "", message: str = "", timeout: float = 30) -> None:
    """Act as the worker: once the deployment exists, record its steps and move it to `state`."""
    deadline = time.monotonic() + timeout
    while not Deployment.objects.filter(name=name).exists():
        assert time.monotonic() < deadline, "the CLI never created the deployment"
        time.sleep(0.05)
    deployment = Deployment.objects.get(name=name)
    services.event_record(deployment=deployment, reason="StorageInitialized", message="model and code copied")
    if state == "Failed":
        services.event_record(deployment=deployment, reason=reason, message=message, type="Warning")
    moved = Deployment.objects.filter(pk=deployment.pk, state=deployment.state).update(
        state=state, reason=reason, message=message
    )
    assert moved == 1


@pytest.fixture
def ep1(cli_env: dict[str, str]) -> Endpoint:
    return factories.endpoint("ep1")


def test_create_waits_shows_progress_and_all_traffic_moves_traffic(
    ep1: Endpoint, cli_env: dict[str, str], azure_files: Path
) -> None:
    process = start_cli(
        ("online-deployment", "create", "-n", "blue", "-e", "ep1", "-f", "blue-deployment.yml", "--all-traffic"),
        cli_env,
        azure_files,
    )
    settle("blue", "Succeeded")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert json.loads(stdout)["provisioning_state"] == "Succeeded"
    lines = stderr.splitlines()
    assert "Normal Creating" in lines[0] and "ep1/blue: Creating" in lines
    assert any("Normal Creating: generation 1: 1 × Standard_DS3_v2" in line for line in lines)
    assert any("Normal StorageInitialized: model and code copied" in line for line in lines)
    assert "ep1/blue: Succeeded" in lines
    assert lines[-1] == "ep1: all traffic to blue"
    assert Endpoint.objects.get(name="ep1").traffic == {"blue": 100}


# What the local backend records when init() raises: a headline, then the log's traceback.
INIT_FAILURE = """the scoring script's init() raised: KeyError: 'MODEL_PATH'
--- last log lines ---
2026-01-01 10:00:00,000 E [12] azmlinfsrv - User's init function failed
Traceback (most recent call last):
  File "/srv/code/score.py", line 5, in init
    path = os.environ["MODEL_PATH"]
           ~~~~~~~~~~^^^^^^^^^^^^^^
  File "<frozen os>", line 679, in __getitem__
KeyError: 'MODEL_PATH'"""


def test_a_failed_create_prints_a_few_lines_without_the_traceback_and_says_traffic_is_unchanged(
    ep1: Endpoint, cli_env: dict[str, str], azure_files: Path
) -> None:
    process = start_cli(
        ("online-deployment", "create", "-e", "ep1", "-f", "blue-deployment.yml", "--all-traffic"), cli_env, azure_files
    )
    settle("blue", "Failed", reason="UserScriptInitFailed", message=INIT_FAILURE)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    lines = stderr.splitlines()
    assert "Traceback" not in stderr and 'MODEL_PATH"]' not in stderr
    assert len(lines) <= 6, stderr
    assert lines[0] == "ep1/blue: Creating" or "Normal Creating" in lines[0]
    assert any(
        line.endswith("Warning UserScriptInitFailed: the scoring script's init() raised: KeyError: 'MODEL_PATH'")
        for line in lines
    )
    assert lines[-2] == (
        "ERROR: deployment 'blue' of online endpoint 'ep1' is Failed: UserScriptInitFailed: the scoring script's "
        "init() raised: KeyError: 'MODEL_PATH'; traffic was not changed (--all-traffic moves it only once the "
        "deployment succeeds)"
    )
    assert lines[-1] == "more: studio online-deployment get-logs -n blue -e ep1 --lines 100"
    assert Endpoint.objects.get(name="ep1").traffic == {"blue": 0}


def test_progress_lines_come_in_order_once_each(ep1: Endpoint, cli_env: dict[str, str], azure_files: Path) -> None:
    process = start_cli(("online-deployment", "create", "-e", "ep1", "-f", "blue-deployment.yml"), cli_env, azure_files)
    settle("blue", "Succeeded")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    lines = stderr.splitlines()
    assert len(lines) == len(set(lines)), stderr
    creating = next(i for i, line in enumerate(lines) if "Normal Creating" in line)
    initialized = next(i for i, line in enumerate(lines) if "StorageInitialized" in line)
    assert creating < initialized < lines.index("ep1/blue: Succeeded") == len(lines) - 1


def test_update_shows_only_this_generations_events(ep1: Endpoint, cli_env: dict[str, str], azure_files: Path) -> None:
    deployment = factories.deployment(ep1, "blue")
    services.event_record(deployment=deployment, reason="StorageInitialized", message="from the first rollout")
    Deployment.objects.filter(name="blue").update(state="Succeeded")
    process = start_cli(
        ("online-deployment", "update", "-n", "blue", "-e", "ep1", "--set", "instance_count=2"), cli_env, azure_files
    )
    deadline = time.monotonic() + 30
    while Deployment.objects.get(name="blue").state != "Scaling":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    Deployment.objects.filter(name="blue", state="Scaling").update(state="Succeeded")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "from the first rollout" not in stderr and "generation 1" not in stderr
    assert any("Normal Scaling: generation 2: changed instance_count" in line for line in stderr.splitlines())


def test_update_waits_for_the_scaled_deployment(ep1: Endpoint, cli_env: dict[str, str], azure_files: Path) -> None:
    factories.deployment(ep1, "blue")
    Deployment.objects.filter(name="blue").update(state="Succeeded")
    process = start_cli(
        ("online-deployment", "update", "-n", "blue", "-e", "ep1", "--set", "instance_count=2"), cli_env, azure_files
    )
    deadline = time.monotonic() + 30
    while Deployment.objects.get(name="blue").state != "Scaling":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    Deployment.objects.filter(name="blue", state="Scaling").update(state="Succeeded")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert json.loads(stdout)["instance_count"] == 2
    assert "ep1/blue: Scaling" in stderr.splitlines()


def test_all_traffic_with_no_wait_is_refused(ep1: Endpoint, studio: Studio) -> None:
    result = studio(
        "online-deployment", "create", "-e", "ep1", "-f", "blue-deployment.yml", "--all-traffic", "--no-wait"
    )
    assert_error(
        result, "--all-traffic moves traffic once the deployment has succeeded, so it cannot go with --no-wait"
    )


class FakeGateway(BaseHTTPRequestHandler):
    """Stands in for the scoring gateway: records what the CLI sends, answers as configured."""

    requests: list[dict[str, Any]] = []
    status = 200
    answer = b'{"result": [11055.97, 4503.07]}'

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway(settings: Any) -> Iterator[type[FakeGateway]]:
    handler = type("Gateway", (FakeGateway,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.STUDIO_GATEWAY_URL = f"http://127.0.0.1:{server.server_address[1]}"
    yield handler
    server.shutdown()
    server.server_close()


def test_invoke_posts_the_request_file_with_the_primary_key_and_pins_the_deployment(
    gateway: type[FakeGateway], studio: Studio
) -> None:
    endpoint = factories.endpoint("ep1")
    result = studio(
        "online-endpoint", "invoke", "-n", "ep1", "--request-file", "sample-request.json", "--deployment-name", "blue"
    )
    assert result.code == 0, result.stderr
    assert result.stdout == '{"result": [11055.97, 4503.07]}\n'
    (sent,) = gateway.requests
    assert sent["path"] == "/endpoints/ep1/score"
    assert sent["headers"]["Authorization"] == f"Bearer {endpoint.primary_key}"
    assert sent["headers"]["azureml-model-deployment"] == "blue"
    assert sent["body"] == b'{"data": [[1, 2, 3]]}\n'


def test_invoke_aml_token_endpoint_sends_a_fresh_token(gateway: type[FakeGateway], studio: Studio) -> None:
    from apps.endpoints.tokens import verify_token

    endpoint = factories.endpoint("tok", auth_mode="aml_token")
    assert studio("online-endpoint", "invoke", "-n", "tok", "--request-file", "sample-request.json").code == 0
    (sent,) = gateway.requests
    assert "azureml-model-deployment" not in sent["headers"]
    token = sent["headers"]["Authorization"].removeprefix("Bearer ")
    assert verify_token(token, endpoint="tok", secret=endpoint.token_secret)


def test_invoke_error_status_prints_status_and_body_and_exits_1(gateway: type[FakeGateway], studio: Studio) -> None:
    factories.endpoint("ep1")
    gateway.status = 404
    gateway.answer = b'{"message": "no deployment of online endpoint ep1 takes traffic"}'
    result = studio("online-endpoint", "invoke", "-n", "ep1", "--request-file", "sample-request.json")
    assert_error(result, "404 Not Found from http://127.0.0.1:")
    assert result.stderr.rstrip().endswith(
        '/endpoints/ep1/score: {"message": "no deployment of online endpoint ep1 takes traffic"}'
    )


def test_invoke_without_a_gateway_says_so(studio: Studio, settings: Any) -> None:
    settings.STUDIO_GATEWAY_URL = "http://127.0.0.1:9"
    factories.endpoint("ep1")
    result = studio("online-endpoint", "invoke", "-n", "ep1", "--request-file", "sample-request.json")
    assert_error(result, "the scoring gateway is not reachable at http://127.0.0.1:9/endpoints/ep1/score")


def test_invoke_missing_request_file(studio: Studio) -> None:
    factories.endpoint("ep1")
    result = studio("online-endpoint", "invoke", "-n", "ep1", "--request-file", "nope.json")
    assert_error(result, "--request-file: nope.json does not exist")


def test_get_logs_prints_the_log_text(studio: Studio) -> None:
    factories.deployment(factories.endpoint("ep1"), "blue")
    result = studio("online-deployment", "get-logs", "-n", "blue", "-e", "ep1", "--lines", "20")
    assert result.code == 0, result.stderr
    bad = studio("online-deployment", "get-logs", "-n", "blue", "-e", "ep1", "--container", "sidecar")
    assert_error(bad, "container: expected inference-server or storage-initializer, got 'sidecar'")

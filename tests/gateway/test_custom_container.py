"""Custom containers (environments with `inference_config` routes) are scored on their own scoring route."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apps.endpoints import services
from tests import factories
from tests.gateway.conftest import bearer, free_port, make_endpoint, routing_changed, set_traffic

# A stand-in for TF Serving: scores only on its own path and answers 404 on the runtime's `/score`.
TF_SERVING_LIKE = """
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self._answer(200 if self.path == "/v1/models/half_plus_two" else 404, {"state": "AVAILABLE"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path != "/v1/models/half_plus_two:predict":
            return self._answer(404, {"error": "no route " + self.path})
        xs = json.loads(body)["instances"]
        self._answer(200, {"predictions": [x / 2 + 2 for x in xs]})

    def _answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


@pytest.fixture
def tf_serving(tmp_path: Path) -> Iterator[str]:
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent(TF_SERVING_LIKE))
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port)])
    address = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(address + "/v1/models/half_plus_two", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the custom container did not start"
            time.sleep(0.05)
    yield address
    proc.terminate()
    proc.wait(timeout=10)


def test_a_custom_container_is_scored_on_its_scoring_route(tf_serving: str, gateway) -> None:  # noqa: ANN001
    from apps.endpoints.models import Instance

    route = {"port": 8501, "path": "/v1/models/half_plus_two"}
    factories.environment(
        "tf-serving",
        image="tensorflow/serving:2.16.1",
        inference_config={
            "liveness_route": route,
            "readiness_route": route,
            "scoring_route": {"port": 8501, "path": "/v1/models/half_plus_two:predict"},
        },
    )
    ep = make_endpoint("tf-ep")
    spec = factories.deployment_spec("blue", environment="azureml:tf-serving@latest")
    deployment = services.deployment_create(endpoint=ep, spec=spec)
    Instance.objects.create(deployment=deployment, name="blue-0", address=tf_serving, state="Ready", ready=True)
    routing_changed()
    set_traffic(ep, {"blue": 100})
    gateway.wait_for(
        lambda: gateway.knows("tf-ep", "blue", instances=1) and gateway.state.config.table["tf-ep"].weights
    )

    response = httpx.post(gateway.score_url("tf-ep"), json={"instances": [1.0, 2.0, 5.0]}, headers=bearer(ep))

    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [2.5, 3.0, 4.5]}
    assert response.headers["azureml-model-deployment"] == "blue"

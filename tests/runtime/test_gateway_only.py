"""An instance started with a secret answers only requests that carry it (the gateway's), and its liveness probe."""

from __future__ import annotations

from typing import Any

SCRIPT = """
import os

def init():
    pass

def run(data):
    return {"secret_seen": os.environ.get("STUDIO_INSTANCE_SECRET")}
"""


def test_instance_with_a_secret_refuses_requests_without_it(start_runtime: Any) -> None:
    server = start_runtime(SCRIPT, env={"STUDIO_INSTANCE_SECRET": "s3cret-of-this-run"})
    assert server.get("/").status == 200  # liveness stays open for the probes
    direct = server.post_json("/score", {"x": 1})
    assert direct.status == 403
    assert "answers only the studio's gateway" in direct.json()["message"]
    assert server.post_json("/score", {"x": 1}, headers={"x-studio-instance-secret": "guess"}).status == 403
    assert server.get("/swagger.json").status == 403
    through_gateway = server.post_json("/score", {"x": 1}, headers={"x-studio-instance-secret": "s3cret-of-this-run"})
    assert through_gateway.status == 200
    assert through_gateway.json() == {"secret_seen": None}  # the scoring script is not handed the secret


def test_instance_without_a_secret_answers_anyone(start_runtime: Any) -> None:
    server = start_runtime(SCRIPT)
    assert server.post_json("/score", {"x": 1}).status == 200

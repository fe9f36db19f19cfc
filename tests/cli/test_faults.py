"""Scoring keeps working through faults of the studio around it (issue 13), on one real `studio up`.

One stack, started from a folder that holds a `studio/` package of its own, serves two instances under a
bounded load to 127.0.0.1 while its parts are killed one after another with SIGKILL, then while `studio up`
itself is stopped and started. Every non-2xx answer and every transport error counts as a failure.
Intervals are shortened through settings (heartbeats, observation, back-off), never slept through.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.cli.conftest import ENDPOINT_YML, azure_files, run  # noqa: F401 (azure_files is a fixture)
from tests.cli.test_up import (  # noqa: F401 (fixtures)
    SCORING_DEPLOYMENT_YML,
    Up,
    is_gateway,
    start_up,
    stop_with_ctrl_c,
    survivors,
    up_env,
)
from tests.endpoints.conftest import kill_instances, runtime_processes

FAST = {
    "STUDIO_HEARTBEAT_S": "1",
    "STUDIO_HEARTBEAT_STALE_S": "4",
    "STUDIO_OBSERVE_INTERVAL_S": "1",
    "STUDIO_UP_BACKOFF_MS": "200",
    "STUDIO_RESTART_BACKOFF_MS": "200",
    "STUDIO_GATEWAY_RELOAD_S": "1",
}


class Load:
    """One client thread scoring at a bounded pace; counts every answer and every failure."""

    def __init__(self, uri: str, key: str) -> None:
        self.uri, self.key = uri, key
        self.ok = 0
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        deadline = time.monotonic() + 600  # bounded even if the test never stops it
        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {self.key}"}) as client:
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    answer = client.post(self.uri, json={"data": [[1, 2, 3]]})
                    if 200 <= answer.status_code < 300:
                        self.ok += 1
                    else:
                        self.failures.append(f"{answer.status_code} {answer.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                time.sleep(0.005)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)


def wait_for(what: str, check: Callable[[], Any], up: Up, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n--- studio up:\n{up.output()[-4000:]}"
        time.sleep(0.2)


def leader(up: Up, marker: str) -> psutil.Process:
    """The child of `studio up` whose command line holds `marker`."""
    for proc in psutil.Process(up.process.pid).children():
        if marker in " ".join(proc.cmdline()):
            return proc
    raise AssertionError(f"no child of studio up runs {marker!r}")


def heartbeat(base: str, part: str) -> float:
    try:
        parts = httpx.get(f"{base}/healthz", timeout=2).json()["parts"]
    except (httpx.HTTPError, ValueError):
        return 0.0
    return next((p["last_seen"] or 0.0 for p in parts if p["name"] == part and p["status"] == "ok"), 0.0)


@pytest.fixture
def instances_dir(up_env: dict[str, str]) -> Iterator[Path]:  # noqa: F811
    folder = Path(up_env["STUDIO_HOME"]) / "instances"
    yield folder
    kill_instances(folder)


def instance_pids(instances: Path) -> list[int]:
    return sorted(process.pid for process in runtime_processes(instances))


@pytest.mark.e2e
def test_scoring_survives_kills_of_every_part_and_a_restart_of_studio_up(
    start_up: Any,  # noqa: F811
    up_env: dict[str, str],  # noqa: F811
    azure_files: Path,  # noqa: F811
    instances_dir: Path,
) -> None:
    up_env.update(FAST)
    (azure_files / "endpoint.yml").write_text(ENDPOINT_YML.replace("my-endpoint", "ep1"))
    (azure_files / "blue-deployment.yml").write_text(
        SCORING_DEPLOYMENT_YML.replace("instance_count: 1", "instance_count: 2")
    )
    (azure_files / "green-deployment.yml").write_text(SCORING_DEPLOYMENT_YML.replace("name: blue", "name: green"))
    # A folder holding a `studio/` package that would shadow the studio's own if a child put the cwd on sys.path.
    shadow = azure_files / "clone-parent"
    (shadow / "studio").mkdir(parents=True)
    (shadow / "studio" / "__init__.py").write_text("raise ImportError('the folder studio up ran from')\n")
    (shadow / "studio" / "celery.py").write_text("app = None\n")
    up = start_up("faults", cwd=shadow)
    config = json.loads((Path(up_env["STUDIO_HOME"]) / "cli.json").read_text())
    base = config["url"]

    def cli(*args: str) -> Any:
        result = run(args, up_env, cwd=azure_files, timeout=300)
        assert result.code == 0, f"studio {' '.join(args)}:\n{result.stderr}\n--- studio up:\n{up.output()[-4000:]}"
        return result

    cli("online-endpoint", "create", "-f", "endpoint.yml")
    cli("online-deployment", "create", "-f", "blue-deployment.yml", "--all-traffic")
    shown = cli("online-endpoint", "show", "-n", "ep1").json()
    key = cli("online-endpoint", "get-credentials", "-n", "ep1").json()["primaryKey"]
    gateway_base = shown["scoring_uri"].split("/endpoints/")[0]
    blue_pids = instance_pids(instances_dir)
    assert len(blue_pids) == 2

    with Load(shown["scoring_uri"], key) as load:
        wait_for("the first answers", lambda: load.ok > 20, up)

        # The worker, killed right after a deployment was created: it comes back and the deployment completes.
        cli("online-deployment", "create", "-f", "green-deployment.yml", "--no-wait")
        killed_at = time.time()
        leader(up, "--quiet worker").kill()
        wait_for("the worker's restart line", lambda: "the worker was killed by signal 9" in up.output(), up)
        wait_for("the worker's heartbeat", lambda: heartbeat(base, "worker") > killed_at, up)
        wait_for(
            "green to succeed",
            lambda: (
                cli("online-deployment", "show", "-n", "green", "-e", "ep1").json()["provisioning_state"] == "Succeeded"
            ),
            up,
        )

        # Beat: an instance killed while it is down is restarted once it is back.
        killed_at = time.time()
        leader(up, "--quiet beat").kill()
        psutil.Process(blue_pids[0]).kill()
        wait_for("the beat's restart line", lambda: "the beat was killed by signal 9" in up.output(), up)
        wait_for("the beat's heartbeat", lambda: heartbeat(base, "beat") > killed_at, up)

        def blue_restarted() -> bool:
            instances = cli("online-deployment", "show", "-n", "blue", "-e", "ep1").json()["instances"]
            return [i["state"] for i in instances] == ["Ready", "Ready"] and sum(i["restarts"] for i in instances) == 1

        wait_for("the killed instance to be restarted", blue_restarted, up)

        # Redis: the gateway keeps routing from its last table and keeps its metrics until Redis is back.
        killed_at = time.time()
        leader(up, "redis-server").kill()
        wait_for("the Redis restart line", lambda: "the embedded Redis was killed by signal 9" in up.output(), up)
        wait_for("the reconciler after Redis", lambda: heartbeat(base, "reconciler") > killed_at + 1, up)

        # The web server.
        killed_at = time.time()
        leader(up, "uvicorn studio.asgi").kill()
        wait_for("the web server's restart line", lambda: "the web server was killed by signal 9" in up.output(), up)
        wait_for("the web server", lambda: heartbeat(base, "web") > killed_at, up)
        served_before_restart = load.ok

        # `studio up` stopped and started: the gateway and the instances are re-adopted, nothing duplicated.
        gateway = next(proc for proc in up.descendants() if is_gateway(proc))
        pids = instance_pids(instances_dir)
        assert len(pids) == 3  # blue's two, green's one
        children = up.descendants()
        assert stop_with_ctrl_c(up) == 0
        assert "Traceback" not in up.output().split("studio up: stopping the", 1)[1]
        assert survivors([p for p in children if p.pid not in pids]) == []  # but the gateway and the instances
        wait_for("answers while studio up is stopped", lambda: load.ok > served_before_restart + 50, up)
        up = start_up("faults-again", cwd=shadow)
        assert f"the gateway (pid {gateway.pid}) kept serving" in up.output()
        time.sleep(3)  # several periodic passes of the new worker
        assert instance_pids(instances_dir) == pids
        assert [p.pid for p in up.descendants() if is_gateway(p)] == []  # adopted, not started again
        served = load.ok

    assert load.failures == []
    assert served > 500
    metrics = httpx.get(f"{gateway_base}/metrics", timeout=5).text
    assert "studio_gateway_metrics_records_dropped_total 0" in metrics

    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=60) == 0
    assert "Traceback" not in up.output()  # kills and a restart before: not one traceback
    down = run(("down", "--instances"), up_env)
    assert down.code == 0, down.stderr
    assert f"stopped the gateway (pid {gateway.pid})" in down.stdout
    assert "stopped 3 deployment instance(s)" in down.stdout
    assert instance_pids(instances_dir) == []

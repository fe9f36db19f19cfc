"""How long after a fault begins does a rollout's rollback take effect in the gateway?

Starts a `studio up` of its own (free ports, a temporary STUDIO_HOME, the embedded SQLite and Redis), deploys
`blue` (healthy) and `green` (whose score.py fails every request while a fault file exists), sends steady load
through the gateway, and per run: makes green faulty, starts a rollout to green with steps [20, 100], and
records every answer's time and deployment (the gateway's `azureml-model-deployment` header). It prints, per
run and as medians over runs:

- fault → min_requests: from green's first (faulty) answer to green's `min_requests`-th answer;
- fault → rollback:     from green's first answer to its last (after that the gateway sends it nothing);
- min_requests → rollback, also in gate intervals (the aim: at most two evaluations), split in two:
  min_requests → decided (the rollback event's time: metrics flush, beat, ingest, the judge) and
  decided → gateway (commit, the routing change feed, the gateway's reload, answers in flight; measured to
  within the gap between two of green's answers, so it can come out slightly below zero).

    python bench/rollout.py [--runs 3] [--studios 1] [--gate-ms 500 1000] [--min-requests 30]

Needs what `studio up` needs; the first run builds the environment (python:3.11 + the runtime) once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

STUDIO = str(Path(sys.executable).with_name("studio"))
SCORE_PY = """\
import os

def init():
    pass

def run(raw_data):
    if os.path.exists(os.environ["FAULT_FILE"]):
        raise RuntimeError("the fault is on")
    return {"answer": 1}
"""
DEPLOYMENT = """\
name: {name}
endpoint_name: bench-ro
code_configuration:
  code: ./code/
  scoring_script: score.py
environment:
  image: python:3.11
instance_type: Standard_DS1_v2
instance_count: 1
environment_variables:
  FAULT_FILE: {fault}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Studio:
    def __init__(self, gate_ms: int) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bench-ro-"))
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("STUDIO_") and k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
        }
        self.env.update(STUDIO_HOME=str(self.folder / "h"), STUDIO_ROLLOUT_GATE_INTERVAL_MS=str(gate_ms))
        self.log = self.folder / "up.log"
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                [STUDIO, "up", "--port", str(free_port()), "--gateway-port", str(free_port())],
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 120
        while "Studio is up" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"studio up did not start:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def cli(self, *args: str) -> Any:
        done = subprocess.run(
            [STUDIO, *args], env=self.env, cwd=self.folder, capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            raise SystemExit(f"studio {' '.join(args)}: {done.stderr}")
        return json.loads(done.stdout) if done.stdout.strip() else None

    def stop(self) -> None:
        self.cli("online-endpoint", "delete", "-n", "bench-ro", "--yes")
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        # The gateway is detached (it outlives `studio up` by design): only `studio down` stops it.
        subprocess.run([STUDIO, "down", "--instances"], env=self.env, capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


class Load(threading.Thread):
    """Steady requests through the gateway; (time, deployment) of every answer."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.answers: list[tuple[float, str]] = []  # wall-clock time: compared with the rollback event's
        self.stopped = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stopped.is_set():
                try:
                    answer = client.post(self.url, content=b"{}", headers=self.headers)
                    self.answers.append((time.time(), answer.headers.get("azureml-model-deployment", "?")))
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)


def one_run(studio: Studio, load: Load, fault: Path, min_requests: int) -> dict[str, float]:
    fault.write_text("on")
    mark = len(load.answers)
    studio.cli(
        "online-endpoint", "rollout", "start", "--name", "bench-ro", "--deployment", "green",
        "--steps", "20,100", "--step-duration", "10m", "--min-requests", str(min_requests), "--max-p99-ratio", "1000",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while (shown := studio.cli("online-endpoint", "rollout", "show", "--name", "bench-ro"))["state"] == "Running":
        if time.monotonic() > deadline:
            raise SystemExit("the rollout did not roll back within 120 s")
        time.sleep(0.2)
    decided = next(e for e in shown["events"] if e["reason"] == "RolloutRolledBack")
    time.sleep(2)  # answers still in flight at the rollback
    green = [t for t, name in load.answers[mark:] if name == "green"]
    fault.unlink()
    if len(green) < min_requests:
        raise SystemExit(f"green answered only {len(green)} times")
    first, reached, last = green[0], green[min_requests - 1], green[-1]
    decided_at = datetime.fromisoformat(decided["time"]).timestamp()
    return {
        "to_min": reached - first,
        "to_rollback": last - first,
        "min_to_rollback": last - reached,
        "min_to_decided": decided_at - reached,
        "decided_to_gateway": last - decided_at,
    }


def studio_runs(gate_ms: int, runs: int, min_requests: int) -> Iterator[dict[str, float]]:
    """`runs` rollbacks on one studio of its own."""
    studio = Studio(gate_ms)
    try:
        (studio.folder / "code").mkdir()
        (studio.folder / "code" / "score.py").write_text(SCORE_PY)
        fault = studio.folder / "fault"
        (studio.folder / "ep.yml").write_text("name: bench-ro\nauth_mode: key\n")
        studio.cli("online-endpoint", "create", "-f", "ep.yml")
        for name in ("blue", "green"):
            (studio.folder / f"{name}.yml").write_text(DEPLOYMENT.format(name=name, fault=fault))
            studio.cli("online-deployment", "create", "-f", f"{name}.yml", *(["--all-traffic"] * (name == "blue")))
        shown = studio.cli("online-endpoint", "show", "-n", "bench-ro")
        key = studio.cli("online-endpoint", "get-credentials", "-n", "bench-ro")["primaryKey"]
        load = Load(shown["scoring_uri"], key)
        load.start()
        time.sleep(2)
        for run in range(runs):
            # A step's window starts at the 10 s interval it began in: let the last run's answers age out.
            time.sleep(11 if run else 0)
            yield one_run(studio, load, fault, min_requests)
        load.stopped.set()
        load.join(timeout=15)
    finally:
        studio.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rollbacks per studio")
    parser.add_argument("--studios", type=int, default=1, help="studios per gate interval (each its own timers)")
    parser.add_argument("--gate-ms", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--min-requests", type=int, default=30)
    args = parser.parse_args()
    rows = []
    for gate_ms in args.gate_ms:
        # Beat's timer and the gateway's flush keep their phase for a studio's life: runs of one studio share it,
        # so the runs are spread over several studios.
        for index in range(args.studios):
            for run, figures in enumerate(studio_runs(gate_ms, args.runs, args.min_requests), start=1):
                rows.append((gate_ms, figures))
                intervals = figures["min_to_rollback"] * 1000 / gate_ms
                print(
                    f"gate {gate_ms} ms studio {index + 1} run {run}: fault → min_requests {figures['to_min']:.2f} s, "
                    f"fault → rollback {figures['to_rollback']:.2f} s, min_requests → rollback "
                    f"{figures['min_to_rollback']:.2f} s = {intervals:.1f} gate intervals (decided after "
                    f"{figures['min_to_decided']:.2f} s, in the gateway {figures['decided_to_gateway']:.2f} s later)",
                    flush=True,
                )
    print("\nmedians (over every run of every studio)")
    print(
        "| gate interval | fault → min_requests s | fault → rollback s | min_requests → rollback s | in intervals "
        "| min_requests → decided s | decided → gateway s |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for gate_ms in args.gate_ms:
        runs = [f for g, f in rows if g == gate_ms]
        to_min = statistics.median(f["to_min"] for f in runs)
        total = statistics.median(f["to_rollback"] for f in runs)
        after = statistics.median(f["min_to_rollback"] for f in runs)
        decided = statistics.median(f["min_to_decided"] for f in runs)
        applied = statistics.median(f["decided_to_gateway"] for f in runs)
        print(
            f"| {gate_ms} ms | {to_min:.2f} | {total:.2f} | {after:.2f} | {after * 1000 / gate_ms:.1f} "
            f"| {decided:.2f} | {applied:.2f} |"
        )


if __name__ == "__main__":
    main()

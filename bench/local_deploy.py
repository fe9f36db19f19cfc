"""Seconds from `studio online-deployment create` to Succeeded on the local backend, for a scikit-learn model.

Starts `studio up` with a fresh STUDIO_HOME on free ports, registers nothing by hand: the CLI uploads the
model, the code and the conda file as a user would, and waits until the deployment is Succeeded (or Failed).
The first deployment builds the environment (scikit-learn from PyPI, through uv's shared cache); the next
ones use the cached environment. Prints each figure and the median of the cached ones, then deletes
everything and stops the stack.

    .venv/bin/python bench/local_deploy.py [--cached-rounds 3]
"""

from __future__ import annotations

import argparse
import os
import pickle
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sklearn
from sklearn.linear_model import LinearRegression

STUDIO = str(Path(sys.executable).with_name("studio"))
SCORE_PY = """\
import json, os, pickle
import numpy as np

def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb") as handle:
        model = pickle.load(handle)

def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    return model.predict(data).tolist()
"""
CONDA_YML = f"""\
name: sklearn-env
channels: [conda-forge]
dependencies:
  - python=3.11
  - pip
  - pip:
      - scikit-learn=={sklearn.__version__}
"""
DEPLOYMENT_YML = """\
name: {name}
endpoint_name: bench
model:
  path: ./model.pkl
code_configuration:
  code: ./code/
  scoring_script: score.py
environment:
  conda_file: ./conda.yaml
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
instance_type: Standard_DS2_v2
instance_count: 1
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cached-rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("STUDIO_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env["STUDIO_HOME"] = str(work / "h")
    model = LinearRegression().fit([[0, 0], [1, 1], [2, 2]], [0, 1, 2])
    (work / "model.pkl").write_bytes(pickle.dumps(model))
    (work / "code").mkdir()
    (work / "code" / "score.py").write_text(SCORE_PY)
    (work / "conda.yaml").write_text(CONDA_YML)
    (work / "endpoint.yml").write_text("name: bench\nauth_mode: key\n")
    (work / "request.json").write_text('{"data": [[3, 3]]}')
    log = open(work / "up.log", "wb")  # noqa: SIM115 (kept open for the stack's lifetime)
    up = subprocess.Popen(
        [STUDIO, "up", "--port", str(free_port()), "--gateway-port", str(free_port())],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while "Studio is up" not in (work / "up.log").read_text(errors="replace"):
            if up.poll() is not None or time.monotonic() > deadline:
                print((work / "up.log").read_text(errors="replace"))
                return 1
            time.sleep(0.2)

        def studio(*argv: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run([STUDIO, *argv], env=env, cwd=work, capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                raise SystemExit(f"studio {' '.join(argv)} failed:\n{done.stderr}")
            return done

        studio("online-endpoint", "create", "-f", "endpoint.yml")
        figures: list[tuple[str, float]] = []
        for round_ in range(args.cached_rounds + 1):
            name = f"dep{round_}"
            (work / f"{name}.yml").write_text(DEPLOYMENT_YML.format(name=name))
            started = time.monotonic()
            studio("online-deployment", "create", "-f", f"{name}.yml")
            elapsed = time.monotonic() - started
            answer = studio(
                "online-endpoint", "invoke", "-n", "bench", "--deployment-name", name, "--request-file", "request.json"
            )
            kind = "first build" if round_ == 0 else "cached environment"
            figures.append((kind, elapsed))
            print(f"{name}: {kind:<20} create -> Succeeded {elapsed:6.2f} s   answer {answer.stdout.strip()}")
        cached = [seconds for kind, seconds in figures if kind != "first build"]
        print(
            f"first build: {figures[0][1]:.2f} s; cached environment: median {statistics.median(cached):.2f} s "
            f"over {len(cached)} deployments (scikit-learn {sklearn.__version__})"
        )
        studio("online-endpoint", "delete", "-n", "bench", "--yes")
        return 0
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
        # The gateway is detached (it outlives `studio up` by design): only `studio down` stops it.
        subprocess.run([STUDIO, "down", "--instances"], env=env, capture_output=True, timeout=60, check=False)
        log.close()


if __name__ == "__main__":
    sys.exit(main())

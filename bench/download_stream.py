"""Memory of the studio's web process while a pod's storage initializer downloads a large model.

Starts the studio's ASGI application under uvicorn (as deploy/kubernetes runs `studio-web`) on a fresh
STUDIO_HOME with SQLite, registers a model of `--size-mb` random bytes and a deployment using it, then
downloads the model the way a pod does (the deployment's credential, streaming) while sampling the web
process's resident memory every 20 ms. Prints the model size, the memory before and at its peak, the time to
the first byte and the throughput. Issue 20 measured the old download (a gzip built whole in memory) at
~180 MB more memory for a 200 MB model before the first byte.

    .venv/bin/python bench/download_stream.py [--size-mb 200] [--downloads 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

from apps.core.redis_server import EmbeddedRedis

REPO = Path(__file__).resolve().parents[1]
SETUP = """
import io, os, zipfile
from apps.endpoints import services
from apps.endpoints.backends.manifests import options_from_settings
from apps.endpoints.specs import deployment_spec
size = int(os.environ["BENCH_SIZE"])
upload = services.upload_create(stream=io.BytesIO(os.urandom(size)), kind="file", name="weights.bin")
model = services.model_create(spec={"name": "big", "path": f"upload:{upload.uid}"})
folder = io.BytesIO()
with zipfile.ZipFile(folder, "w") as archive:
    archive.writestr("score.py", "def init(): pass\\ndef run(raw): return raw\\n")
code = services.upload_create(stream=io.BytesIO(folder.getvalue()), kind="folder", name="src")
environment = services.environment_create(spec={"name": "env", "image": "python:3.11"})
endpoint = services.endpoint_create(spec={"name": "bench"})
deployment = services.deployment_create(endpoint=endpoint, spec={
    "name": "blue", "model": "azureml:big:1", "environment": "azureml:env:1",
    "code_configuration": {"code": f"upload:{code.uid}", "scoring_script": "score.py"},
    "instance_type": "Standard_DS2_v2", "instance_count": 1})
spec = deployment_spec(deployment)
print(spec.model_uid, options_from_settings(spec).download_token)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--downloads", type=int, default=1, help="downloads at once (pods starting together)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="studio-bench-download-"))
    redis = EmbeddedRedis(home / "run" / "redis.sock", persist=False)  # the queued reconcile goes nowhere
    redis.start()
    env = {**os.environ, "STUDIO_HOME": str(home), "STUDIO_MAX_UPLOAD_BYTES": str(4 * 1024**3)}
    env.pop("DATABASE_URL", None)
    env["REDIS_URL"] = redis.url
    env["BENCH_SIZE"] = str(args.size_mb * 1024 * 1024)
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=REPO)
    out = subprocess.run([*manage, "shell", "-c", SETUP], env=env, cwd=REPO, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"set-up failed:\n{out.stderr}")
    model_uid, token = out.stdout.split()[-2:]
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "studio.asgi:application", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/v1/downloads/model/{model_uid}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        process = psutil.Process(web.pid)
        before = process.memory_info().rss
        peak = before
        sampling = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not sampling.is_set():
                peak = max(peak, process.memory_info().rss)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        results: list[tuple[float, int, float]] = []

        def download() -> None:
            started = time.monotonic()
            first = None
            received = 0
            with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes(1024 * 1024):
                    first = first or time.monotonic()
                    received += len(chunk)
            results.append(((first or time.monotonic()) - started, received, time.monotonic() - started))

        threads = [threading.Thread(target=download) for _ in range(args.downloads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sampling.set()
        sampler.join()
        mib = 1024 * 1024
        print(f"model: {args.size_mb} MiB, {args.downloads} download(s) at once")
        print(f"web process RSS before: {before / mib:.1f} MiB, peak during: {peak / mib:.1f} MiB")
        print(f"peak increase: {(peak - before) / mib:.1f} MiB")
        for ttfb, received, total in results:
            print(f"first byte after {ttfb * 1000:.0f} ms; {received / mib:.1f} MiB in {total:.2f} s")
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)
        redis.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()

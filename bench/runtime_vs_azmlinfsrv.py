"""Studio's runtime (`python -m runtime`) against Azure's azmlinfsrv 1.5.1 on the same scikit-learn score.py.

Needs: python3 with venv, PyPI reachable on the first run (the venv is cached), and `wrk` on PATH
(Debian: `apt-get install -y wrk`). Traffic goes to 127.0.0.1 only and every run is bounded in time.

Both servers run from ONE virtual environment (azureml-inference-server-http==1.5.1, scikit-learn,
plus the runtime's own requirements) so they share the interpreter, numpy and scikit-learn: the only
difference is the server. Both are started with the same --worker_count, then wrk drives them in
alternating rounds (16 connections by default); the medians of the rounds are printed with the ratios.

    python bench/runtime_vs_azmlinfsrv.py [--rounds 5] [--duration 10] [--connections 16] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

from loadgen import Round, free_port, run_wrk, stop

REPO = Path(__file__).resolve().parents[1]
AZMLINFSRV = "azureml-inference-server-http==1.5.1"
SCORE_PY = """
    import json
    import os

    import joblib
    import numpy as np

    def init():
        global model
        model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.joblib"))

    def run(raw_data):
        data = np.array(json.loads(raw_data)["data"])
        return model.predict(data).tolist()
"""
TRAIN_PY = """
    import sys

    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    joblib.dump(LogisticRegression().fit(x, y), sys.argv[1])
"""
PAYLOAD = {"data": [[0.1, -1.2, 0.3, 2.0], [1.5, 0.2, -0.7, 0.0]]}


def main() -> None:
    """Build or reuse the venv, start both servers, run the rounds, print the table."""
    args = _arguments()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed on PATH (Debian: apt-get install -y wrk)")
    python = _venv(Path(args.cache_dir).expanduser())
    work = Path(tempfile.mkdtemp(prefix="bench-infsrv-"))
    servers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        (work / "model").mkdir()
        (work / "score.py").write_text(textwrap.dedent(SCORE_PY))
        subprocess.run([python, "-c", textwrap.dedent(TRAIN_PY), str(work / "model" / "model.joblib")], check=True)
        lua = work / "post.lua"
        lua.write_text(
            f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(PAYLOAD))}\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        ports = {"azmlinfsrv": free_port(), "studio-infsrv": free_port()}
        common = ["--entry_script", "score.py", "--model_dir", "model", "--worker_count", str(args.workers)]
        env = {**os.environ, "PYTHONPATH": str(REPO), "AML_APP_ROOT": str(work)}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        bindir = Path(python).parent
        commands = {
            "azmlinfsrv": [str(bindir / "azmlinfsrv"), *common, "--port", str(ports["azmlinfsrv"])],
            "studio-infsrv": [
                python,
                "-m",
                "runtime",
                *common,
                "--port",
                str(ports["studio-infsrv"]),
                "--host",
                "127.0.0.1",
            ],
        }
        for name, command in commands.items():
            log = (work / f"{name}.log").open("wb")
            servers[name] = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        for name, port in ports.items():
            _wait_ready(port, servers[name], work / f"{name}.log")
        _check_same_answer(ports)
        rounds: dict[str, list[Round]] = {name: [] for name in ports}
        for port in ports.values():  # warm-up: first requests, caches, lazy imports
            run_wrk(f"http://127.0.0.1:{port}/score", lua, connections=args.connections, duration=2)
        for i in range(args.rounds):
            for name, port in ports.items():
                result = run_wrk(
                    f"http://127.0.0.1:{port}/score", lua, connections=args.connections, duration=args.duration
                )
                rounds[name].append(result)
                print(
                    f"round {i + 1}/{args.rounds} {name:14} {result.rps:9.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                    f"p99 {result.p99_ms:7.2f} ms  errors {result.errors}",
                    flush=True,
                )
        rss = {name: _worker_rss_mib(servers[name].pid) for name in ports}
        _report(rounds, rss, args)
    finally:
        for proc in servers.values():
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def _arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=int, default=10, help="seconds per round")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--workers", type=int, default=1, help="--worker_count for both servers")
    p.add_argument("--cache-dir", default="~/.cache/studio-bench", help="where the benchmark venv is kept")
    return p.parse_args()


def _venv(cache: Path) -> str:
    venv = cache / "azmlinfsrv-1.5.1"
    python = venv / "bin" / "python"
    marker = venv / ".complete"
    if not marker.exists():
        print(f"creating {venv} with {AZMLINFSRV} (first run only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                AZMLINFSRV,
                "scikit-learn",
                "joblib",
                "-r",
                str(REPO / "runtime" / "requirements.txt"),
            ],
            check=True,
        )
        marker.write_text("ok\n")
    return str(python)


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"server on port {port} not ready after {timeout}s:\n{log.read_text(errors='replace')}")


def _check_same_answer(ports: dict[str, int]) -> None:
    # A benchmark of two servers that answer differently would compare nothing.
    bodies = set()
    for port in ports.values():
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/score",
            data=json.dumps(PAYLOAD).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            bodies.add(answer.read())
    if len(bodies) != 1:
        sys.exit(f"the two servers answer differently: {bodies}")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _worker_rss_mib(pid: int) -> float:
    """Mean RSS of the processes that serve requests: the forked workers, or the process itself when alone."""
    workers = _children(pid)
    return statistics.mean(_rss_mib(p) for p in workers) if workers else _rss_mib(pid)


def _report(rounds: dict[str, list[Round]], rss: dict[str, float], args: argparse.Namespace) -> None:
    med = {
        name: {
            "rps": statistics.median(r.rps for r in rs),
            "p50": statistics.median(r.p50_ms for r in rs),
            "p99": statistics.median(r.p99_ms for r in rs),
            "errors": sum(r.errors for r in rs),
        }
        for name, rs in rounds.items()
    }
    az, us = med["azmlinfsrv"], med["studio-infsrv"]
    print()
    print(
        f"medians of {args.rounds} rounds x {args.duration}s, {args.connections} connections, "
        f"--worker_count {args.workers}, {os.cpu_count()} CPUs"
    )
    print(f"{'server':15}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'RSS/worker MiB':>16}{'errors':>8}")
    for name, m in med.items():
        print(f"{name:15}{m['rps']:10.0f}{m['p50']:10.2f}{m['p99']:10.2f}{rss[name]:16.1f}{m['errors']:8d}")
    ratios = (us["rps"] / az["rps"], us["p50"] / az["p50"], us["p99"] / az["p99"])
    print(
        f"{'ratio studio/az':15}{ratios[0]:9.2f}x{ratios[1]:9.2f}x{ratios[2]:9.2f}x"
        f"{rss['studio-infsrv'] / rss['azmlinfsrv']:15.2f}x"
    )


if __name__ == "__main__":
    main()

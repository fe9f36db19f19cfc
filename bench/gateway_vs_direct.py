"""The scoring gateway against calling the instance directly, side by side in one run.

Needs `wrk` on PATH (Debian: `apt-get install -y wrk`). Everything runs on 127.0.0.1 in a throw-away
STUDIO_HOME (SQLite, an embedded Redis) and every round is bounded in time.

One studio-infsrv instance (`python -m runtime`) serves a trivial score.py. The gateway
(`python -m gateway`) routes two endpoints to that same instance: `bench` (blue=100) and
`benchm` (blue=100, and 10 % mirrored to a second instance). Rounds alternate the targets:

    direct     POST http://127.0.0.1:<instance>/score
    gateway    POST http://127.0.0.1:<gateway>/endpoints/bench/score    (Bearer key)
    nometrics  the same through a second gateway started with STUDIO_GATEWAY_METRICS=0
    mirror10   POST http://127.0.0.1:<gateway>/endpoints/benchm/score   (Bearer key, 10 % mirrored)

at 16 connections (throughput) and at 1 connection (added latency). Each round drives every target once,
back to back; a ratio is taken within each round and the median of those ratios is printed (on a shared,
noisy machine this is steadier than a ratio of medians). For the gateways, the CPU time the gateway process
spent per request is printed too: it is what metrics and mirroring cost the gateway itself, and it moves far
less with neighbours' load than throughput does. For mirror10 it includes the shadow copies' work; the
shadow instance's own CPU is printed apart, since on this machine it runs on the same two cores.

    python bench/gateway_vs_direct.py [--rounds 5] [--duration 5] [--connections 16] [--gateway-workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import psutil
from loadgen import Round, free_port, run_wrk, stop

REPO = Path(__file__).resolve().parents[1]
SCORE_PY = """
    import json

    def init():
        pass

    def run(raw_data):
        return {"result": json.loads(raw_data)["data"]}
"""
PAYLOAD = {"data": [[0.1, -1.2, 0.3, 2.0]]}
KEY = "bench-primary-key-0123456789abcdef"


def main() -> None:
    """Start Redis, the database, one instance, the gateway; run the rounds; print the table."""
    args = _arguments()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed on PATH (Debian: apt-get install -y wrk)")
    work = Path(tempfile.mkdtemp(prefix="studio-bench-gateway-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(STUDIO_HOME=str(work / "home"), PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    processes: list[subprocess.Popen[bytes]] = []
    sys.path.insert(0, str(REPO))
    from apps.core.redis_server import EmbeddedRedis

    redis = EmbeddedRedis(work / "redis.sock", persist=False)
    try:
        redis.start()
        env["REDIS_URL"] = redis.url
        live_port, shadow_port, gateway_port, bare_port = free_port(), free_port(), free_port(), free_port()
        for name, port in (("live", live_port), ("shadow", shadow_port)):
            processes.append(_start_instance(work / name, port, env))
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True)
        _write_routing(env, live_port, shadow_port)
        # The same gateway twice: as users run it, and with metrics off (to show what counting costs).
        for port, log, metrics in ((gateway_port, "gateway.log", "1"), (bare_port, "gateway-nometrics.log", "0")):
            command = [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(port),
                       "--workers", str(args.gateway_workers)]  # fmt: skip
            processes.append(_start(command, work / log, {**env, "STUDIO_GATEWAY_METRICS": metrics}))
        shadow, gateway, bare = processes[1], processes[2], processes[3]
        for port in (live_port, shadow_port, gateway_port, bare_port):
            _wait_listening(port)
        targets = {
            "direct": (f"http://127.0.0.1:{live_port}/score", {}),
            "gateway": (f"http://127.0.0.1:{gateway_port}/endpoints/bench/score", {"Authorization": f"Bearer {KEY}"}),
            "nometrics": (
                f"http://127.0.0.1:{bare_port}/endpoints/bench/score",
                {"Authorization": f"Bearer {KEY}"},
            ),
            "mirror10": (
                f"http://127.0.0.1:{gateway_port}/endpoints/benchm/score",
                {"Authorization": f"Bearer {KEY}"},
            ),
        }
        _check_same_answer(targets)
        scripts = {name: _lua(work / f"{name}.lua", headers) for name, (_, headers) in targets.items()}
        # Whose CPU time counts for each target: the gateway process serving it, and the shadow instance.
        watched = {"gateway": gateway, "nometrics": bare, "mirror10": gateway}
        results: dict[tuple[str, int], list[Round]] = {}
        cpu: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for connections in (args.connections, 1):
            for name, (url, _) in targets.items():  # warm up pools and caches
                run_wrk(url, scripts[name], connections=connections, duration=1)
            for index in range(args.rounds):
                order = list(targets) if index % 2 == 0 else list(reversed(targets))
                for name in order:
                    url = targets[name][0]
                    before = (_cpu_seconds(watched.get(name)), _cpu_seconds(shadow))
                    round_ = run_wrk(url, scripts[name], connections=connections, duration=args.duration)
                    requests = round_.rps * args.duration
                    per_request = tuple(
                        (_cpu_seconds(process) - then) / requests * 1e6
                        for process, then in zip((watched.get(name), shadow), before, strict=True)
                    )
                    results.setdefault((name, connections), []).append(round_)
                    cpu.setdefault((name, connections), []).append(per_request)
                    print(f"  {connections:>2} conn  {name:9} {round_.rps:9.0f} req/s  p50 {round_.p50_ms:6.2f} ms  "
                          f"p99 {round_.p99_ms:6.2f} ms  errors {round_.errors}  "
                          f"CPU/request gateway {per_request[0]:5.1f} us, shadow {per_request[1]:5.1f} us",
                          flush=True)  # fmt: skip
        _report(results, cpu, args)
        print(f"\nshadow instance answered {_scored(shadow_port)} mirrored copies; gateway log: {work / 'gateway.log'}")
    finally:
        for process in reversed(processes):
            stop(process)
        redis.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--gateway-workers", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) afterwards")
    return parser.parse_args()


def _write_routing(env: dict[str, str], live_port: int, shadow_port: int) -> None:
    """The rows the gateway routes by, written through the ORM in a child (its own settings)."""
    script = f"""
        import django
        django.setup()
        from apps.endpoints.models import Deployment, Endpoint, Environment, Instance
        environment = Environment.objects.create(name="bench", version="1", image="python:3.11")
        settings = {{"request_timeout_ms": 5000, "max_concurrent_requests_per_instance": 64}}
        for name, mirror in (("bench", {{}}), ("benchm", {{"green": 10}})):
            endpoint = Endpoint.objects.create(
                name=name, primary_key="{KEY}", secondary_key="other-key-0123456789",
                token_secret="unused", traffic={{"blue": 100, "green": 0}}, mirror_traffic=mirror,
            )
            for deployment_name, port in (("blue", {live_port}), ("green", {shadow_port})):
                deployment = Deployment.objects.create(
                    endpoint=endpoint, name=deployment_name, environment=environment,
                    instance_type="Standard_DS2_v2", request_settings=settings, state="Succeeded",
                )
                Instance.objects.create(
                    deployment=deployment, name=deployment_name + "-0", address="http://127.0.0.1:" + str(port),
                    state="Ready", ready=True,
                )
    """
    child_env = {**env, "DJANGO_SETTINGS_MODULE": "studio.settings"}
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=REPO, env=child_env, check=True)


def _start_instance(app_dir: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    (app_dir / "model").mkdir(parents=True)
    (app_dir / "score.py").write_text(textwrap.dedent(SCORE_PY))
    command = [sys.executable, "-m", "runtime", "--entry_script", "score.py", "--model_dir", "model",
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    return _start(command, app_dir / "server.log", env, cwd=app_dir)


def _start(command: list[str], log: Path, env: dict[str, str], cwd: Path = REPO) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as handle:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)


def _wait_listening(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on port {port} after {timeout}s")


def _check_same_answer(targets: dict[str, tuple[str, dict[str, str]]]) -> None:
    bodies = {}
    for name, (url, headers) in targets.items():
        request = urllib.request.Request(
            url, data=json.dumps(PAYLOAD).encode(), headers={"Content-Type": "application/json", **headers}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            bodies[name] = answer.read()
    if len(set(bodies.values())) != 1:
        sys.exit(f"the targets answer differently: {bodies}")


def _lua(path: Path, headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(PAYLOAD))}",
             'wrk.headers["Content-Type"] = "application/json"']  # fmt: skip
    lines += [f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}" for name, value in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _scored(port: int) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("infsrv_requests_total{") and 'route="/score"' in line
    )


def _cpu_seconds(process: subprocess.Popen[bytes] | None) -> float:
    """User + system CPU time of a process and its children so far (0 when there is none)."""
    if process is None:
        return 0.0
    root = psutil.Process(process.pid)
    total = 0.0
    for member in (root, *root.children(recursive=True)):
        times = member.cpu_times()
        total += times.user + times.system
    return total


def _report(
    results: dict[tuple[str, int], list[Round]],
    cpu: dict[tuple[str, int], list[tuple[float, float]]],
    args: argparse.Namespace,
) -> None:
    def med(name: str, connections: int, field: str) -> float:
        return statistics.median(getattr(r, field) for r in results[(name, connections)])

    def paired(a: str, b: str, connections: int, field: str) -> float:
        """The median over rounds of a/b, each ratio from one round (the two measured back to back)."""
        pairs = zip(results[(a, connections)], results[(b, connections)], strict=True)
        return statistics.median(getattr(x, field) / getattr(y, field) for x, y in pairs)

    def cpu_med(name: str, connections: int, which: int) -> float:
        return statistics.median(sample[which] for sample in cpu[(name, connections)])

    print(f"\nmedians of {args.rounds} rounds x {args.duration}s, gateway workers {args.gateway_workers}, "
          f"{os.cpu_count()} CPUs (wrk, the instances and the gateways share them)")  # fmt: skip
    for connections in (args.connections, 1):
        print(f"\n{connections} connection(s)")
        print(
            f"{'target':10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}"
            f"{'gateway CPU/req':>17}{'shadow CPU/req':>16}"
        )
        for name in ("direct", "gateway", "nometrics", "mirror10"):
            errors = sum(r.errors for r in results[(name, connections)])
            gateway_cpu = f"{cpu_med(name, connections, 0):.1f} us" if name != "direct" else "-"
            shadow_cpu = f"{cpu_med(name, connections, 1):.1f} us" if name == "mirror10" else "-"
            print(f"{name:10}{med(name, connections, 'rps'):>10.0f}{med(name, connections, 'p50_ms'):>10.2f}"
                  f"{med(name, connections, 'p99_ms'):>10.2f}{errors:>8}{gateway_cpu:>17}{shadow_cpu:>16}")  # fmt: skip
    c = args.connections
    added = statistics.median(
        g.p50_ms - d.p50_ms for g, d in zip(results[("gateway", 1)], results[("direct", 1)], strict=True)
    )
    print("\nper-round ratios, median over rounds:")
    print(
        f"throughput gateway / direct at {c} connections: {paired('gateway', 'direct', c, 'rps'):.2f}x"
        "  (target >= 0.6x)"
    )
    print(f"added p50 at 1 connection: {added:.3f} ms  (target <= 0.3 ms)")
    print(f"throughput with metrics / without at {c} connections: {paired('gateway', 'nometrics', c, 'rps'):.3f}x  "
          f"(target >= 0.95x); gateway CPU per request {cpu_med('gateway', c, 0):.1f} us with metrics, "
          f"{cpu_med('nometrics', c, 0):.1f} us without")  # fmt: skip
    growth = paired("mirror10", "gateway", c, "p99_ms") - 1
    print(
        f"live p99 with 10 % mirroring vs none at {c} connections: {growth * 100:+.1f} %  (target <= +10 %); "
        f"gateway CPU per live request {cpu_med('mirror10', c, 0):.1f} us mirrored, "
        f"{cpu_med('gateway', c, 0):.1f} us not; the shadow instance {cpu_med('mirror10', c, 1):.1f} us "
        "per live request"
    )


if __name__ == "__main__":
    main()

"""One studio at scale: E endpoints × 3 deployments on PostgreSQL, N gateway processes, M reconcile workers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python bench/scale.py --endpoints 1000 --gateways 50 --workers 4

It makes its own database (`studio_bench_scale`, dropped at the end) and Redis prefix. Instances are simulated
(a bench-only backend reports them ready without starting a process each): their addresses point to a small pool
of real runtime processes, so scoring through any gateway reaches a real `score.py`. It prints:

- list pages and API lists: server time p50/p95 (in-process Django client, one request at a time);
- routing: full reload and one-endpoint reload time, table memory per route, RSS per gateway process;
- a traffic change live in all N gateways: p50/max over 20 changes (the change's commit until every gateway
  answers from the new deployment);
- a burst spread over all gateways and 30 deployments: answers per deployment vs what `metrics_ingest` counted
  once every gateway flushed and the queue was drained (exact or not);
- observation passes over every deployment as the beat task fans them out (settled ones in chunks), run by M
  worker processes on the simulated backend: nothing changed, 1 % changed, changed back; time and rows written;
- the gateway's added latency (gateway minus direct, p50) with 3 routes and with all of them.

Everything is bounded: each wait has a deadline, each loop a count; every process it starts is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SCORE_PY = """
import os
def init():
    pass
def run(raw_data):
    return {"instance": os.environ.get("INSTANCE_NAME", "")}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


def wait_http(url: str, deadline_s: float = 60) -> None:
    import httpx

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {deadline_s}s")


def setup_environment(args: argparse.Namespace) -> str:
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        raise SystemExit("bench/scale.py needs DATABASE_URL=postgres://... (and REDIS_URL)")
    if not os.environ.get("REDIS_URL"):
        raise SystemExit("bench/scale.py needs REDIS_URL")
    import psycopg

    admin = base.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS studio_bench_scale")
        conn.execute("CREATE DATABASE studio_bench_scale")
    os.environ["DATABASE_URL"] = base.rsplit("/", 1)[0] + "/studio_bench_scale"
    os.environ["STUDIO_REDIS_PREFIX"] = f"bench-scale-{uuid.uuid4().hex[:8]}:"
    os.environ["STUDIO_HOME"] = tempfile.mkdtemp(prefix="bench-scale-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    return admin


def main() -> None:  # noqa: PLR0915 (one script, read top to bottom)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--gateways", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runtimes", type=int, default=3, help="real runtime processes the instances point to")
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--burst", type=int, default=1000, help="requests of the metrics burst")
    parser.add_argument("--observe-only", action="store_true", help="only the observation passes (no gateways)")
    parser.add_argument("--lists-only", action="store_true", help="only the list timings (no gateways, no workers)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a `timeout` still stops every process it started
    admin = setup_environment(args)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    processes: list[subprocess.Popen[bytes]] = []
    try:
        run(args, processes)
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        from django.db import connections

        connections.close_all()
        import psycopg

        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS studio_bench_scale WITH (FORCE)")


def run(args: argparse.Namespace, processes: list[subprocess.Popen[bytes]]) -> None:  # noqa: PLR0915
    import httpx
    import psutil
    from django.contrib.auth import get_user_model
    from django.test import Client

    from apps.core.notify import publish
    from apps.endpoints import selectors, services
    from apps.endpoints.models import Deployment, Endpoint, Instance
    from gateway.routing import table_from_rows
    from tests import factories

    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}")
    # --- a small pool of real runtime processes ---
    work = Path(os.environ["STUDIO_HOME"])
    (work / "app" / "model").mkdir(parents=True)
    (work / "app" / "score.py").write_text(textwrap.dedent(SCORE_PY))
    pool = []
    for index in range(args.runtimes):
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO), "INSTANCE_NAME": f"runtime-{index}"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        command = [sys.executable, "-m", "runtime", "--entry_script", "score.py", "--model_dir", "model",
                   "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
        processes.append(subprocess.Popen(command, cwd=work / "app", env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))  # fmt: skip
        pool.append(f"http://127.0.0.1:{port}")
    for address in pool:
        wait_http(address + "/")

    # --- the rows: 3 endpoints first (the small table), the rest in bulk later ---
    services._queue_reconcile = lambda deployment: None  # type: ignore[assignment]  # the bench drives reconcile
    template = factories.deployment(factories.endpoint("ep-00000"), "blue")
    fields = {
        f.attname: getattr(template, f.attname)
        for f in Deployment._meta.concrete_fields
        if f.attname not in ("id", "uid", "endpoint_id", "name", "created_at", "updated_at")
    }
    fields.update(state="Succeeded", observed_generation=fields["generation"])
    Deployment.objects.filter(pk=template.pk).update(state="Succeeded", observed_generation=template.generation)
    Endpoint.objects.filter(pk=template.endpoint_id).update(traffic={"blue": 100})

    def grow(total: int) -> None:
        have = Endpoint.objects.count()
        endpoints = Endpoint.objects.bulk_create(
            Endpoint(name=f"ep-{i:05d}", traffic={"blue": 100, "green": 0, "red": 0},
                     primary_key=uuid.uuid4().hex, secondary_key=uuid.uuid4().hex, token_secret=uuid.uuid4().hex)
            for i in range(have, total)
        )  # fmt: skip
        for ep in Endpoint.objects.filter(name="ep-00000"):
            Endpoint.objects.filter(pk=ep.pk).update(traffic={"blue": 100, "green": 0, "red": 0})
        deployments = Deployment.objects.bulk_create(
            Deployment(endpoint=ep, name=name, **fields) for ep in endpoints for name in ("blue", "green", "red")
        )
        if Deployment.objects.filter(endpoint__name="ep-00000").count() == 1:
            ep0 = Endpoint.objects.get(name="ep-00000")
            deployments += Deployment.objects.bulk_create(
                Deployment(endpoint=ep0, name=name, **fields) for name in ("green", "red")
            )
        # As the simulated backend will report them: an observation of an unchanged deployment changes nothing.
        Instance.objects.bulk_create(
            Instance(deployment=d, name=f"{d.name}-0", address=runtime_of(pool, str(d.uid)), state="Ready",
                     ready=True, generation=d.generation)
            for d in deployments
        )  # fmt: skip
        if not Instance.objects.filter(deployment=template).exists():
            Instance.objects.create(deployment=template, name="blue-0", address=runtime_of(pool, str(template.uid)),
                                    state="Ready", ready=True, generation=template.generation)  # fmt: skip
        Deployment.objects.update(ready_instances=1)

    grow(3)
    publish(["*"])

    # --- lists: server time ---
    def measure_lists() -> None:
        user = get_user_model().objects.create_superuser("bench", password="bench-password-1")
        client = Client()
        client.force_login(user)
        from rest_framework.authtoken.models import Token
        from rest_framework.test import APIClient

        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        for label, http, url in [
            ("page /endpoints/", client, "/endpoints/"),
            ("page /endpoints/?q=ep-004&sort=-updated", client, "/endpoints/?q=ep-004&sort=-updated"),
            ("page /endpoints/?state=Succeeded&tag=x", client, "/endpoints/?state=Succeeded&tag=x"),
            ("page /models/", client, "/models/"),
            ("page /environments/", client, "/environments/"),
            ("API online-endpoints", api, "/api/v1/online-endpoints"),
            ("API deployments of one", api, "/api/v1/online-endpoints/ep-00010/deployments"),
            ("API models", api, "/api/v1/models"),
            ("API environments", api, "/api/v1/environments"),
        ]:
            times = []
            for _ in range(15):
                t0 = time.perf_counter()
                response = http.get(url)
                times.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, (url, response.status_code)
            print(f"list {label}: p50 {pct(times, 50):.0f} ms, p95 {pct(times, 95):.0f} ms")

    if args.observe_only:  # the observation passes alone, no gateways
        grow(args.endpoints)
        measure_observation(args, pool)
        return
    if args.lists_only:  # issue 16's figure: the lists alone, no gateways or workers
        began = time.monotonic()
        grow(args.endpoints)
        print(f"rows: {Endpoint.objects.count()} endpoints, {Deployment.objects.count()} deployments, "
              f"written in {time.monotonic() - began:.1f} s")  # fmt: skip
        measure_lists()
        return

    # --- gateways ---
    gateways: list[tuple[str, subprocess.Popen[bytes]]] = []
    for _ in range(args.gateways):
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO), "STUDIO_GATEWAY_RELOAD_S": "600"}
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "--port", str(port)], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        processes.append(proc)
        gateways.append((f"http://127.0.0.1:{port}", proc))
    started = time.monotonic()
    for url, _ in gateways:
        wait_http(url + "/metrics", deadline_s=300)
    print(f"{len(gateways)} gateways up in {time.monotonic() - started:.1f} s (load {os.getloadavg()[0]:.1f})")

    key = Endpoint.objects.get(name="ep-00000").primary_key
    headers = {"Authorization": f"Bearer {key}"}

    def added_latency(label: str) -> None:
        gateway_ms, direct_ms = [], []
        with httpx.Client(timeout=30) as client:
            for _ in range(200):
                began = time.perf_counter()
                client.post(gateways[0][0] + "/endpoints/ep-00000/score", json={}, headers=headers)
                gateway_ms.append((time.perf_counter() - began) * 1000)
                began = time.perf_counter()
                client.post(pool[0] + "/score", json={})
                direct_ms.append((time.perf_counter() - began) * 1000)
        added = statistics.median(gateway_ms) - statistics.median(direct_ms)
        print(f"added latency, {label}: gateway p50 {statistics.median(gateway_ms):.2f} ms, direct p50 "
              f"{statistics.median(direct_ms):.2f} ms, added {added:.2f} ms")  # fmt: skip

    routable = lambda url: httpx.post(url + "/endpoints/ep-00000/score", json={}, headers=headers).status_code  # noqa: E731
    end = time.monotonic() + 60
    while any(routable(url) != 200 for url, _ in gateways[:1]) and time.monotonic() < end:
        time.sleep(0.2)
    added_latency("3 routes")

    # --- grow to E endpoints × 3 deployments ---
    began = time.monotonic()
    grow(args.endpoints)
    print(f"rows: {Endpoint.objects.count()} endpoints, {Deployment.objects.count()} deployments, "
          f"{Instance.objects.count()} instances, written in {time.monotonic() - began:.1f} s")  # fmt: skip
    publish(["*"])

    # routing reload cost and memory, measured in this process on the same code the gateways run
    full_s, one_s = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        rows = selectors.routing_rows()
        table = table_from_rows(rows)
        full_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        table_from_rows(selectors.routing_rows(names=["ep-00007"]))
        one_s.append(time.perf_counter() - t0)
    tracemalloc.start()
    table = table_from_rows(selectors.routing_rows())
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    routes = sum(len(t.deployments) for t in table.values())
    print(f"routing: full reload ({len(table)} endpoints, {routes} deployments) p50 "
          f"{statistics.median(full_s) * 1000:.0f} ms; one endpoint p50 {statistics.median(one_s) * 1000:.1f} ms; "
          f"table {size / 1024 / 1024:.1f} MiB = {size / routes:.0f} B per deployment route")  # fmt: skip
    time.sleep(3)  # the gateways' full reload after "*"
    end = time.monotonic() + 120
    while time.monotonic() < end:
        try:
            if all(routable(url) == 200 for url, _ in gateways):
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    rss = [psutil.Process(proc.pid).memory_info().rss / 1024 / 1024 for _, proc in gateways]
    print(f"gateway RSS with the full table: p50 {statistics.median(rss):.0f} MiB, max {max(rss):.0f} MiB")
    added_latency(f"{routes} routes")

    measure_lists()

    # --- a traffic change live in all N gateways ---
    ep = Endpoint.objects.get(name="ep-00000")

    async def live_everywhere(expect: str, deadline: float) -> float:
        async with httpx.AsyncClient(timeout=10) as session:

            async def one(url: str) -> float:
                while time.monotonic() < deadline:
                    answer = await session.post(url + "/endpoints/ep-00000/score", json={}, headers=headers)
                    if answer.headers.get("azureml-model-deployment") == expect:
                        return time.monotonic()
                    await asyncio.sleep(0.005)
                return float("inf")

            return max(await asyncio.gather(*(one(url) for url, _ in gateways)))

    delays = []
    for index in range(args.changes):
        target = ("green", "blue")[index % 2]
        began = time.monotonic()
        services.traffic_set(endpoint=ep, traffic={"blue": 0, "green": 0, "red": 0, target: 100})
        done = asyncio.run(live_everywhere(target, began + 30))
        delays.append(done - began)
        ep.refresh_from_db()
    print(f"traffic change live in all {len(gateways)} gateways: p50 {statistics.median(delays) * 1000:.0f} ms, "
          f"max {max(delays) * 1000:.0f} ms over {len(delays)} changes")  # fmt: skip

    measure_metrics(args, [url for url, _ in gateways])
    measure_observation(args, pool)
    print(f"load average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1 / 5 / 15 min)")


def measure_metrics(args: argparse.Namespace, gateways: list[str]) -> None:
    """A burst spread over every gateway and 30 deployments (10 endpoints × blue, green, red, pinned by header):
    answers per deployment against what the rollups counted, once every gateway flushed and the queue was drained.
    """
    from collections import Counter

    import httpx
    from django.db.models import Sum

    from apps.endpoints.models import Endpoint
    from apps.monitoring import services as monitoring
    from apps.monitoring.models import Grain, MetricRollup

    names = [f"ep-{i:05d}" for i in range(1, 11)]
    keys = dict(Endpoint.objects.filter(name__in=names).values_list("name", "primary_key"))
    targets = [(name, deployment) for name in names for deployment in ("blue", "green", "red")]

    def drain() -> None:
        """Ingest until two flush intervals in a row bring nothing new (every gateway flushes each second)."""
        quiet, end = 0, time.monotonic() + 120
        while quiet < 2 and time.monotonic() < end:
            time.sleep(1.2)
            quiet = quiet + 1 if monitoring.metrics_ingest().records == 0 else 0

    def counted() -> Counter[tuple[str, str]]:
        rows = (
            MetricRollup.objects.filter(grain=Grain.TEN_SECONDS, mirrored=False, endpoint__in=names)
            .values_list("endpoint", "deployment")
            .annotate(total=Sum("requests"))
        )
        return Counter({(endpoint, deployment): int(total) for endpoint, deployment, total in rows})

    drain()
    before = counted()
    sent: Counter[tuple[str, str]] = Counter()
    statuses: Counter[int] = Counter()
    unanswered: Counter[str] = Counter()  # by error: these reached no gateway's count, or their answer was lost
    chooser = random.Random(3)
    plan = [(chooser.choice(gateways), chooser.choice(targets)) for _ in range(args.burst)]

    async def burst() -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=30, limits=limits) as session:
            semaphore = asyncio.Semaphore(32)

            async def one(url: str, endpoint: str, deployment: str) -> None:
                headers = {"Authorization": f"Bearer {keys[endpoint]}", "azureml-model-deployment": deployment}
                async with semaphore:
                    try:
                        answer = await session.post(f"{url}/endpoints/{endpoint}/score", json={}, headers=headers)
                    except httpx.HTTPError as error:
                        unanswered[type(error).__name__] += 1
                        return
                sent[(endpoint, deployment)] += 1  # the gateway counts every answer it gives, whatever its status
                statuses[answer.status_code] += 1

            await asyncio.gather(*(one(url, *target) for url, target in plan))

    began = time.monotonic()
    asyncio.run(burst())
    took = time.monotonic() - began
    drain()
    after = counted()
    got = Counter({target: after[target] - before[target] for target in targets})
    exact = [target for target in targets if got[target] == sent[target]]
    print(f"metrics: {sum(sent.values())} requests answered over {len(gateways)} gateways in {took:.1f} s "
          f"(statuses {dict(sorted(statuses.items()))}, unanswered {dict(unanswered)}), {sum(got.values())} counted; "
          f"exact for {len(exact)} of {len(targets)} deployments")  # fmt: skip
    for target in targets[:3]:
        print(f"  {target[0]}/{target[1]}: sent {sent[target]}, counted {got[target]}")
    for target in (target for target in targets if target not in exact):
        print(f"  NOT exact {target[0]}/{target[1]}: sent {sent[target]}, counted {got[target]}")


def runtime_of(pool: list[str], uid: str) -> str:
    """The runtime process a deployment's simulated instances point to (the same in every process)."""
    return pool[int(uuid.UUID(uid)) % len(pool)]


class SimulatedBackend:
    """Bench-only: every instance is ready at an address of the runtime pool; nothing is started."""

    def __init__(self, pool: list[str], unready: frozenset[str] = frozenset()) -> None:
        self.pool = pool
        self.unready = unready  # deployment uids whose instances stopped answering

    def observe(self, spec: Any) -> Any:
        from apps.endpoints.backends.base import InstanceStatus, Observed

        ready = spec.uid not in self.unready
        return Observed(
            instances=tuple(
                InstanceStatus(name=f"{spec.name}-{i}", state="Ready" if ready else "Unready", ready=ready,
                               address=runtime_of(self.pool, spec.uid), generation=spec.generation)
                for i in range(spec.instance_count)
            )
        )  # fmt: skip

    apply = supervise = observe

    def delete(self, spec: Any) -> None:
        return None


def measure_observation(args: argparse.Namespace, pool: list[str]) -> None:
    """Observation passes over every deployment as the beat task fans them out (settled ones in chunks of
    STUDIO_OBSERVE_CHUNK), run by M worker processes on the simulated backend: nothing changed, then 1 % of the
    deployments with an instance gone unready, then back. Prints each pass's time and what it wrote."""
    from datetime import UTC, datetime

    from django.conf import settings
    from django.db import connections

    from apps.core.notify import ROUTING_VERSION_KEY, redis_client
    from apps.endpoints import reconcile
    from apps.endpoints.models import Deployment, DeploymentEvent, Instance

    uids = [str(uid) for uid in Deployment.objects.values_list("uid", flat=True)]
    changed = frozenset(random.Random(1).sample(uids, max(1, len(uids) // 100)))
    connections.close_all()
    context = multiprocessing.get_context("fork")
    jobs: Any = context.Queue()
    done: Any = context.Queue()
    workers = [context.Process(target=_observe, args=(jobs, done, pool)) for _ in range(args.workers)]
    for proc in workers:
        proc.start()
    try:
        for label, unready in [("nothing changed", frozenset()), (f"{len(changed)} deployments changed", changed),
                               ("changed back", frozenset()), ("nothing changed", frozenset())]:  # fmt: skip
            since = datetime.now(UTC)
            version = int(redis_client().get(ROUTING_VERSION_KEY) or 0)
            began = time.monotonic()
            batches = reconcile.periodic_batches(queued_ttl_s=60, chunk=settings.STUDIO_OBSERVE_CHUNK)
            planned = time.monotonic() - began
            for _, pks in batches:
                jobs.put((pks, unready))
            observed = sum(done.get(timeout=900) for _ in batches)
            took = time.monotonic() - began
            instances = Instance.objects.filter(updated_at__gte=since).count()
            events = DeploymentEvent.objects.filter(created_at__gte=since).count()
            published = int(redis_client().get(ROUTING_VERSION_KEY) or 0) - version
            print(f"observation pass ({label}): {observed} deployments in {len(batches)} tasks by {args.workers} "
                  f"workers in {took:.2f} s (planning {planned * 1000:.0f} ms); wrote {instances} instance rows, "
                  f"{events} events; {published} routing changes published")  # fmt: skip
            connections.close_all()
    finally:
        for _ in workers:
            jobs.put(None)
        for proc in workers:
            proc.join(timeout=60)


def _observe(jobs: Any, done: Any, pool: list[str]) -> None:
    """A worker process: observe each chunk it is given, as the chunk task does, until told to stop."""
    from django.db import connections

    from apps.core import broadcast
    from apps.endpoints import reconcile

    connections.close_all()
    broadcast.send = lambda group, payload: None  # no page is open
    while (job := jobs.get()) is not None:
        pks, unready = job
        try:
            states = reconcile.observe_many(pks, backend=SimulatedBackend(pool, unready))  # type: ignore[arg-type]
        finally:
            reconcile.release_queued(*pks)
        done.put(sum(1 for state in states.values() if state is not None))
    connections.close_all()


if __name__ == "__main__":
    main()

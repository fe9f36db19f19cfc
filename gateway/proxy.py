"""The gateway's I/O: authenticate, route, forward over pooled keep-alive connections, mirror, count.

Every answer the gateway makes itself is JSON `{"error": {"code", "message"}}` with Azure's status
codes (401, 404, 408, 413, 424, 429, 503). The Authorization header is never forwarded to the model
and never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import os
import random
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from gateway.config import GatewaySettings, RoutingConfig, TableSource
from gateway.metrics import MetricsAggregator, next_flush_in, render_prometheus
from gateway.routing import (
    NO_WEIGHT_MESSAGE,
    DeploymentRoute,
    EndpointTable,
    RoutingTable,
    choose,
    least_in_flight,
    should_mirror,
)
from gateway.upstream import Unavailable, UpstreamClient
from gateway.wire import INSTANCE_SECRET_HEADER, MIRROR_BODY_LIMIT, MirrorPairRecord, verify_token

logger = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]
JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
# Not forwarded upstream: hop-by-hop, recomputed, or the client's credential.
DROP_REQUEST = frozenset(
    {
        b"host",
        b"connection",
        b"keep-alive",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"authorization",
        b"x-request-id",
        b"expect",
        INSTANCE_SECRET_HEADER.encode(),
    }
)
SECRET_LINE = INSTANCE_SECRET_HEADER.encode() + b": %s\r\n"
# Not passed back: hop-by-hop, recomputed, or set by the gateway itself.
DROP_RESPONSE = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"date",
        b"server",
        b"x-request-id",
        b"x-ms-client-request-id",
        b"azureml-model-deployment",
    }
)
MAX_REQUEST_ID = 100
MAX_CLIENT_REQUEST_ID = 40
# Request ids are random version-4 UUIDs from a generator seeded once per process (uuid4() makes a
# getrandom call per id); unique is what they need to be, not unpredictable.
_request_ids = random.Random()
os.register_at_fork(after_in_child=_request_ids.seed)


@dataclass
class Answer:
    """What the client gets."""

    status: int
    headers: Headers
    body: bytes


@dataclass
class Upstream:
    """What an instance answered (status None: no instance answered, `error` says why)."""

    status: int | None = None
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    error: str = ""  # "timeout" or "unavailable"
    upstream_ms: float | None = None


def error_answer(status: int, code: str, message: str) -> Answer:
    """A JSON error made by the gateway itself."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return Answer(status, list(JSON_HEADERS), body)


def authorized(table: EndpointTable, authorization: bytes | None) -> bool:
    """True when the Bearer credential is one of the endpoint's keys or a valid token for it (or it is local)."""
    if table.local:
        return True
    if not authorization or authorization[:7].lower() != b"bearer ":
        return False
    credential = authorization[7:].strip()
    if not credential:
        return False
    if table.auth_mode == "aml_token":
        try:
            token = credential.decode("ascii")
        except UnicodeDecodeError:
            return False
        return verify_token(token, endpoint=table.name, secret=table.token_secret)
    # Compare with every key (no early exit) so the time taken says nothing about which one matched.
    matched = False
    for key in table.keys:
        matched |= hmac.compare_digest(credential, key)
    return matched


class Gateway:
    """One gateway process's state: routing table, connection pool, in-flight counters, metrics."""

    def __init__(
        self,
        settings: GatewaySettings,
        source: TableSource,
        rng: random.Random | None = None,
        db_thread_init: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.db_thread_init = db_thread_init
        self.rng = rng or random.Random()
        self.metrics = MetricsAggregator()
        self.config: RoutingConfig | None = None
        self.client: UpstreamClient | None = None
        self.redis: Any = None
        self.deployment_in_flight: dict[tuple[str, str], int] = defaultdict(int)
        self.instance_in_flight: dict[str, int] = defaultdict(int)
        self.cooling: dict[str, float] = {}  # instance address -> monotonic time until which it is skipped
        self.mirror_in_flight = 0
        self._round_robin = itertools.count()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pairs: list[MirrorPairRecord] = []
        self._unsent_records: deque[str] = deque()  # pushed to Redis once it answers again
        self._unsent_pairs: deque[str] = deque()
        self._metrics_waiting = False
        self._started = False
        self._stopping = False
        self._start_lock: asyncio.Lock | None = None

    # --- life cycle ---

    async def start(self) -> None:
        """Open the pool and Redis, load the table, start the reload and metrics loops."""
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            url = self.settings.redis_url or self.source.redis_url()
            self.redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            self.client = UpstreamClient()
            self.config = RoutingConfig(self.settings, self.redis, self.source, self.db_thread_init)
            self.config.on_reload = self._forget_gone_instances
            await self.config.start()
            self._spawn(self.config.watch())
            self._spawn(self._flush_loop())
            self._started = True

    async def stop(self) -> None:
        """Stop the loops, push the last metrics, close the pool."""
        if self.config is not None:
            self.config.stopping = True
        self._stopping = True
        loops = list(self._tasks)
        for task in loops:
            task.cancel()
        if loops:
            # Redis' client can turn a cancellation into a connection error, so the loops also watch the flag.
            _, pending = await asyncio.wait(loops, timeout=5)
            if pending:
                logger.warning("%d gateway tasks did not stop within 5 s", len(pending))
        if self.redis is not None:
            await self._flush(final=True)
            await self.redis.aclose()
        if self.client is not None:
            self.client.close()
        if self.config is not None:
            await self.config.close()
        self._started = False

    def _forget_gone_instances(self, table: RoutingTable) -> None:
        """Drop pooled connections and cool-downs of instances no longer in the table."""
        current = {
            address for endpoint in table.values() for d in endpoint.deployments.values() for address in d.instances
        }
        for address in [a for a in self.cooling if a not in current]:
            del self.cooling[address]
        if self.client is not None:
            self.client.retain(current)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- requests ---

    async def score(
        self, *, endpoint_name: str, method: str, query: bytes, headers: Headers, body: bytes, started: float
    ) -> Answer:
        """One scoring request: authenticate, pick a deployment, forward, maybe mirror, count."""
        assert self.config is not None
        request_id = _request_id(headers)
        client_request_id = _header(headers, b"x-ms-client-request-id")
        table = self.config.table.get(endpoint_name)
        if table is None:
            answer = error_answer(404, "EndpointNotFound", f"online endpoint {endpoint_name!r} does not exist")
            return _finish(answer, request_id, client_request_id, None)
        if not authorized(table, _header(headers, b"authorization")):
            answer = self._unauthorized(table)
            self._count(table.name, "", answer, started, None, None, len(body))
            return _finish(answer, request_id, client_request_id, None)
        pinned_raw = _header(headers, b"azureml-model-deployment")
        pinned = pinned_raw.decode("latin-1").strip() if pinned_raw else ""
        if pinned:
            deployment = table.deployments.get(pinned)
            if deployment is None:
                answer = error_answer(
                    404,
                    "DeploymentNotFound",
                    f"deployment {pinned!r} (header azureml-model-deployment) does not exist "
                    f"in online endpoint {table.name!r}",
                )
                self._count(table.name, "", answer, started, None, None, len(body))
                return _finish(answer, request_id, client_request_id, None)
            shadow = None  # a pinned request is never mirrored (Azure's rule)
        else:
            name = choose(table, self.rng)
            if name is None:
                answer = error_answer(404, "NoDeploymentWithTraffic", NO_WEIGHT_MESSAGE)
                self._count(table.name, "", answer, started, None, None, len(body))
                return _finish(answer, request_id, client_request_id, None)
            deployment = table.deployments[name]
            shadow = should_mirror(table, self.rng)
            if shadow == name:
                shadow = None
        forwarded = forwarded_headers(headers, request_id)
        live_result: asyncio.Future[Upstream] | None = None
        if shadow is not None:
            live_result = self._mirror(
                table, table.deployments[shadow], deployment.name, method, query, forwarded, body, request_id
            )
        try:
            answer, upstream = await self._live(table, deployment, method, query, forwarded, body)
        except BaseException:
            if live_result is not None:
                live_result.cancel()  # no live answer to pair with: the shadow must not wait for one
            raise
        if live_result is not None and not live_result.done():
            live_result.set_result(upstream if upstream.status is not None else Upstream(status=answer.status))
        self._count(table.name, deployment.name, answer, started, upstream, upstream.upstream_ms, len(body))
        return _finish(answer, request_id, client_request_id, deployment.name)

    async def swagger(self, *, endpoint_name: str, query: bytes, headers: Headers) -> Answer:
        """The swagger document of the pinned, else a weighted, else any ready deployment."""
        assert self.config is not None
        table = self.config.table.get(endpoint_name)
        if table is None:
            return error_answer(404, "EndpointNotFound", f"online endpoint {endpoint_name!r} does not exist")
        if not authorized(table, _header(headers, b"authorization")):
            return self._unauthorized(table)
        pinned_raw = _header(headers, b"azureml-model-deployment")
        pinned = pinned_raw.decode("latin-1").strip() if pinned_raw else ""
        name = pinned or choose(table, self.rng)
        if not name:
            name = next((d.name for d in table.deployments.values() if d.instances), None)
        deployment = table.deployments.get(name) if name else None
        if deployment is None:
            return error_answer(404, "DeploymentNotFound", f"no deployment of online endpoint {table.name!r} to ask")
        request_id = _request_id(headers)
        upstream = await self._forward(
            deployment, "GET", "/swagger.json", query, forwarded_headers([], request_id), b""
        )
        if upstream.status is None:
            return self._no_answer(deployment, upstream)
        answer = Answer(upstream.status, _pass_headers(upstream.headers), upstream.body)
        answer.headers += [(b"x-request-id", request_id), (b"azureml-model-deployment", deployment.name.encode())]
        return answer

    def prometheus(self) -> Answer:
        """The /metrics page."""
        in_flight = {key: value for key, value in self.deployment_in_flight.items()}
        reloads = self.config.reloads if self.config else 0
        body = render_prometheus(self.metrics, in_flight, reloads).encode()
        return Answer(200, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")], body)

    # --- internals ---

    def _unauthorized(self, table: EndpointTable) -> Answer:
        what = "a valid, unexpired token" if table.auth_mode == "aml_token" else "one of the endpoint's keys"
        return error_answer(
            401,
            "Unauthorized",
            f"online endpoint {table.name!r} uses {table.auth_mode} auth: send 'Authorization: Bearer <{what}>'",
        )

    async def _live(
        self,
        table: EndpointTable,
        deployment: DeploymentRoute,
        method: str,
        query: bytes,
        forwarded: bytes,
        body: bytes,
    ) -> tuple[Answer, Upstream]:
        key = (table.name, deployment.name)
        if not deployment.instances:
            upstream = Upstream(error="unavailable")
            return self._no_answer(deployment, upstream), upstream
        limit = deployment.in_flight_limit
        if self.deployment_in_flight[key] >= limit:
            message = (
                f"deployment {deployment.name!r} already has {self.deployment_in_flight[key]} requests in flight; "
                f"the limit is 2 × max_concurrent_requests_per_instance ({deployment.max_concurrent}) × "
                f"ready instances ({len(deployment.instances)}) = {limit}. Retry later or raise the limit."
            )
            return error_answer(429, "TooManyRequests", message), Upstream()
        self.deployment_in_flight[key] += 1
        try:
            upstream = await self._forward(deployment, method, deployment.scoring_path, query, forwarded, body)
        finally:
            self.deployment_in_flight[key] -= 1
        return self._client_answer(deployment, upstream), upstream

    def _client_answer(self, deployment: DeploymentRoute, upstream: Upstream) -> Answer:
        if upstream.status is None:
            return self._no_answer(deployment, upstream)
        headers = _pass_headers(upstream.headers)
        if upstream.status == 200:
            return Answer(200, headers, upstream.body)
        # Azure: a non-200 from the model container is a 424, with the model's status in headers.
        headers.append((b"ms-azureml-model-error-statuscode", str(upstream.status).encode()))
        headers.append((b"ms-azureml-model-error-reason", b"model_error"))
        return Answer(424, headers, upstream.body)

    def _no_answer(self, deployment: DeploymentRoute, upstream: Upstream) -> Answer:
        if upstream.error == "timeout":
            return error_answer(
                408,
                "RequestTimeout",
                f"deployment {deployment.name!r} did not answer within request_timeout_ms={deployment.timeout_ms}",
            )
        if not deployment.instances:
            message = f"deployment {deployment.name!r} has no ready instance"
        else:
            message = f"no instance of deployment {deployment.name!r} could take the request (all refused it)"
        return error_answer(503, "ServiceUnavailable", message)

    async def _forward(
        self,
        deployment: DeploymentRoute,
        method: str,
        path: str,
        query: bytes,
        forwarded: bytes,
        body: bytes,
    ) -> Upstream:
        """Send to the least busy ready instance; on a refused or dropped connection, to the next one.

        `forwarded`: the request's header lines as they go to the instance (`forwarded_headers`).
        """
        assert self.client is not None
        target = path.encode() + (b"?" + query if query else b"")
        deadline = time.monotonic() + deployment.timeout_ms / 1000
        tried: set[str] = set()
        now = time.monotonic()
        cooling = {address for address, until in self.cooling.items() if until > now}
        while True:
            address = least_in_flight(
                deployment.instances, self.instance_in_flight, next(self._round_robin), tried | cooling
            )
            if address is None:
                address = least_in_flight(deployment.instances, self.instance_in_flight, 0, tried)
            if address is None:
                return Upstream(error="unavailable")
            tried.add(address)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Upstream(error="timeout")
            self.instance_in_flight[address] += 1
            began = time.perf_counter()
            try:
                secret = deployment.secrets.get(address)
                lines = forwarded + (SECRET_LINE % secret if secret else b"")
                response = await self.client.request(address, method, target, lines, body, remaining)
                return Upstream(
                    status=response.status,
                    headers=response.headers,
                    body=response.body,
                    upstream_ms=(time.perf_counter() - began) * 1000,
                )
            except TimeoutError:
                return Upstream(error="timeout", upstream_ms=(time.perf_counter() - began) * 1000)
            except Unavailable as exc:
                # Refused, or dropped before any answer (the instance died): it did not produce an answer,
                # so the request goes to another ready instance; this one is skipped for a moment.
                self.cooling[address] = time.monotonic() + self.settings.instance_cooldown_s
                logger.warning(
                    "instance %s of deployment %s failed (%s); trying another", address, deployment.name, exc
                )
            finally:
                self.instance_in_flight[address] -= 1

    def _mirror(
        self,
        table: EndpointTable,
        shadow: DeploymentRoute,
        live_name: str,
        method: str,
        query: bytes,
        forwarded: bytes,
        body: bytes,
        request_id: bytes,
    ) -> asyncio.Future[Upstream] | None:
        """Send a shadow copy in the background (or drop and count it); returns a future for the live answer."""
        if self.mirror_in_flight >= self.settings.mirror_max_in_flight or not shadow.instances:
            self.metrics.drop_mirror(endpoint=table.name, deployment=shadow.name)
            return None
        sampled = self.rng.random() < self.settings.mirror_sample_rate
        live: asyncio.Future[Upstream] | None = asyncio.get_running_loop().create_future() if sampled else None
        self.mirror_in_flight += 1
        self._spawn(self._shadow(table, shadow, live_name, method, query, forwarded, body, request_id, live))
        return live

    async def _shadow(
        self,
        table: EndpointTable,
        shadow: DeploymentRoute,
        live_name: str,
        method: str,
        query: bytes,
        forwarded: bytes,
        body: bytes,
        request_id: bytes,
        live: asyncio.Future[Upstream] | None,
    ) -> None:
        started = time.perf_counter()
        try:
            upstream = await self._forward(shadow, method, shadow.scoring_path, query, forwarded, body)
            answer = self._client_answer(shadow, upstream)
            self._count(
                table.name, shadow.name, answer, started, upstream, upstream.upstream_ms, len(body), mirrored=True
            )
            if live is not None:
                live_upstream = await asyncio.wait_for(live, timeout=shadow.timeout_ms / 1000 + 60)
                self._pairs.append(
                    MirrorPairRecord(
                        ts=time.time(),
                        endpoint=table.name,
                        deployment=shadow.name,
                        live_deployment=live_name,
                        request_id=request_id.decode("latin-1"),
                        live_status=live_upstream.status or 0,
                        shadow_status=upstream.status or answer.status,
                        live_body=_text(live_upstream.body),
                        shadow_body=_text(upstream.body if upstream.status is not None else answer.body),
                        truncated=len(live_upstream.body) > MIRROR_BODY_LIMIT or len(upstream.body) > MIRROR_BODY_LIMIT,
                    )
                )
        except asyncio.CancelledError:
            raise
        except Exception:  # a shadow copy must never disturb the live path
            logger.exception("mirrored copy to deployment %s failed", shadow.name)
        finally:
            self.mirror_in_flight -= 1

    def _count(
        self,
        endpoint: str,
        deployment: str,
        answer: Answer,
        started: float,
        upstream: Upstream | None,
        upstream_ms: float | None,
        bytes_in: int,
        *,
        mirrored: bool = False,
    ) -> None:
        if not self.settings.metrics_enabled:
            return
        self.metrics.record(
            endpoint=endpoint,
            deployment=deployment,
            mirrored=mirrored,
            status=answer.status,
            model_status=upstream.status if upstream is not None else None,
            total_ms=(time.perf_counter() - started) * 1000,
            upstream_ms=upstream_ms,
            bytes_in=bytes_in,
            bytes_out=len(answer.body),
        )

    async def _flush_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(next_flush_in(time.time(), self.settings.metrics_flush_s))
            await self._flush()

    async def _flush(self, *, final: bool = False) -> None:
        """Push the finished seconds (all of them when stopping) and the sampled pairs to Redis.

        While Redis is down they wait in a bounded buffer (STUDIO_GATEWAY_METRICS_BUFFER records); beyond it
        the oldest are dropped and counted (`studio_gateway_metrics_records_dropped_total`).
        """
        records = self.metrics.drain(before=None if final else time.time())
        self._unsent_records.extend(json.dumps(r) for r in records)
        self._unsent_pairs.extend(json.dumps(p) for p in self._pairs)
        self._pairs = []
        limit = self.settings.metrics_buffer
        while len(self._unsent_records) > limit:
            self._unsent_records.popleft()
            self.metrics.records_dropped += 1
        while len(self._unsent_pairs) > limit:
            self._unsent_pairs.popleft()
        try:
            for queue, unsent in (
                (self.settings.metrics_queue, self._unsent_records),
                (self.settings.mirror_pairs_queue, self._unsent_pairs),
            ):
                while unsent:
                    batch = [unsent[i] for i in range(min(len(unsent), 1000))]
                    await self.redis.rpush(queue, *batch)
                    for _ in batch:
                        unsent.popleft()
        except Exception as exc:  # metrics must never take the gateway down; they wait for Redis
            if not self._metrics_waiting:
                logger.warning(
                    "cannot push metrics to Redis, keeping up to %d records until it is back: %s", limit, exc
                )
            self._metrics_waiting = True
        else:
            if self._metrics_waiting:
                logger.warning(
                    "Redis is back; the buffered metrics were sent (%d dropped so far)", self.metrics.records_dropped
                )
            self._metrics_waiting = False


def forwarded_headers(headers: Headers, request_id: bytes) -> bytes:
    """The client's headers as `name: value` lines for the instance, minus hop-by-hop ones and the credential."""
    lines = [name + b": " + value + b"\r\n" for name, value in headers if name not in DROP_REQUEST]
    lines.append(b"x-request-id: " + request_id + b"\r\n")
    return b"".join(lines)


def _header(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _request_id(headers: Headers) -> bytes:
    given = _header(headers, b"x-request-id")
    if given and len(given) <= MAX_REQUEST_ID:
        return given
    return str(uuid.UUID(int=_request_ids.getrandbits(128), version=4)).encode()


def _finish(answer: Answer, request_id: bytes, client_request_id: bytes | None, deployment: str | None) -> Answer:
    """Every answer carries the request id, the client's id echoed, and the deployment that served it."""
    answer.headers.append((b"x-request-id", request_id))
    if client_request_id is not None:
        answer.headers.append((b"x-ms-client-request-id", client_request_id[:MAX_CLIENT_REQUEST_ID]))
    if deployment is not None:
        answer.headers.append((b"azureml-model-deployment", deployment.encode()))
    return answer


def _pass_headers(raw: Headers) -> Headers:
    return [(name, value) for name, value in raw if name.lower() not in DROP_RESPONSE]


def _text(body: bytes) -> str:
    return body[:MIRROR_BODY_LIMIT].decode("utf-8", errors="replace")

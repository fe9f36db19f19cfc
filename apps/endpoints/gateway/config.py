"""The gateway's own knobs, and the routing table loaded from the database and kept fresh.

The table is read with the Django ORM on a dedicated thread (never on the event loop), when the Redis
counter `studio:routing:version` changes (polled every `poll_ms`) and every `reload_s` regardless, so
a missed bump only delays a change. The table is swapped whole: a request in flight keeps the table it
started with, so no reload can fail it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from apps.endpoints.gateway.routing import (
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_TIMEOUT_MS,
    DeploymentRoute,
    EndpointTable,
    RoutingTable,
)
from apps.monitoring.records import METRICS_QUEUE, MIRROR_PAIRS_QUEUE

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewaySettings:
    """What a gateway process can be tuned with (STUDIO_GATEWAY_* variables)."""

    max_body_bytes: int = 10 * 1024 * 1024
    poll_ms: int = 200
    reload_s: float = 5.0
    mirror_max_in_flight: int = 64  # shadow copies beyond this are dropped and counted, never queued
    instance_cooldown_s: float = 2.0  # an instance that refused a connection is skipped this long
    metrics_queue: str = METRICS_QUEUE
    mirror_pairs_queue: str = MIRROR_PAIRS_QUEUE
    mirror_sample_rate: float = 0.1  # fraction of mirrored requests whose live and shadow answers are kept
    metrics_flush_s: float = 1.0
    metrics_enabled: bool = True  # off only to measure what counting costs (bench/gateway_vs_direct.py)
    redis_url: str = ""  # empty: settings.REDIS_URL

    @classmethod
    def from_env(cls) -> GatewaySettings:
        """Read from the environment with the studio's strict readers (a bad value stops the process)."""
        from studio.env import env_bool, env_int, env_str

        return cls(
            max_body_bytes=env_int("STUDIO_GATEWAY_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1),
            poll_ms=env_int("STUDIO_GATEWAY_POLL_MS", cls.poll_ms, minimum=10),
            reload_s=float(env_int("STUDIO_GATEWAY_RELOAD_S", int(cls.reload_s), minimum=1)),
            mirror_max_in_flight=env_int("STUDIO_GATEWAY_MIRROR_MAX_IN_FLIGHT", cls.mirror_max_in_flight, minimum=0),
            metrics_queue=env_str("STUDIO_GATEWAY_METRICS_QUEUE", METRICS_QUEUE),
            metrics_enabled=env_bool("STUDIO_GATEWAY_METRICS", True),
        )


def load_table() -> dict[str, EndpointTable]:
    """Read every endpoint, its deployments and their ready instances (blocking: call it off the loop)."""
    from django.db import close_old_connections

    from apps.endpoints.models import Endpoint, Instance, ProvisioningState

    close_old_connections()  # a reload after a database restart must not reuse the dead connection
    instances: dict[int, list[str]] = {}
    ready = Instance.objects.filter(ready=True).exclude(address="").order_by("deployment_id", "name")
    for deployment_id, address in ready.values_list("deployment_id", "address"):
        instances.setdefault(deployment_id, []).append(address.rstrip("/"))
    table: dict[str, EndpointTable] = {}
    endpoints = Endpoint.objects.exclude(provisioning_state=ProvisioningState.DELETING).prefetch_related("deployments")
    for endpoint in endpoints:
        deployments: dict[str, DeploymentRoute] = {}
        for deployment in endpoint.deployments.all():
            if deployment.state == ProvisioningState.DELETING:
                continue
            settings = deployment.request_settings or {}
            deployments[deployment.name] = DeploymentRoute(
                name=deployment.name,
                instances=tuple(instances.get(deployment.pk, ())),
                timeout_ms=int(settings.get("request_timeout_ms") or DEFAULT_TIMEOUT_MS),
                max_concurrent=int(settings.get("max_concurrent_requests_per_instance") or DEFAULT_MAX_CONCURRENT),
            )
        weights = tuple(
            (name, int(percent))
            for name, percent in sorted((endpoint.traffic or {}).items())
            if int(percent) > 0 and name in deployments
        )
        mirror = next(((name, int(p)) for name, p in (endpoint.mirror_traffic or {}).items() if int(p) > 0), None)
        if endpoint.local:  # no traffic rules: its one deployment takes every request
            weights, mirror = tuple((name, 100) for name in sorted(deployments)[:1]), None
        table[endpoint.name] = EndpointTable(
            name=endpoint.name,
            auth_mode=endpoint.auth_mode,
            keys=tuple(key.encode() for key in (endpoint.primary_key, endpoint.secondary_key) if key),
            token_secret=endpoint.token_secret,
            weights=weights,
            mirror=mirror,
            deployments=deployments,
            local=endpoint.local,
        )
    return table


class RoutingConfig:
    """Holds the current routing table and reloads it when the routing version in Redis moves."""

    def __init__(
        self, settings: GatewaySettings, redis: object, db_thread_init: Callable[[], None] | None = None
    ) -> None:
        self.settings = settings
        self.redis = redis  # redis.asyncio.Redis
        self.table: RoutingTable = {}
        self.version: bytes | None = None
        self.loaded_at = 0.0
        self.reloads = 0
        self.stopping = False
        self.on_reload: Callable[[RoutingTable], None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-db", initializer=db_thread_init)

    async def reload(self) -> None:
        """Load the table from the database on the DB thread and swap it in."""
        loop = asyncio.get_running_loop()
        self.table = await loop.run_in_executor(self._executor, load_table)
        self.loaded_at = time.monotonic()
        self.reloads += 1
        if self.on_reload is not None:
            self.on_reload(self.table)

    async def start(self) -> None:
        """First load; fails loudly if the database cannot be read at start-up."""
        self.version = await self._read_version()
        await self.reload()

    async def watch(self) -> None:
        """Poll the routing version forever; reload on change and every reload_s."""
        interval = self.settings.poll_ms / 1000
        while not self.stopping:
            await asyncio.sleep(interval)
            try:
                version = await self._read_version()
                stale = time.monotonic() - self.loaded_at >= self.settings.reload_s
                if version != self.version or stale:
                    await self.reload()
                    self.version = version
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a flaky DB or Redis keeps the last good table
                logger.warning("routing table reload failed, keeping the previous one: %s", exc)
                await asyncio.sleep(min(1.0, self.settings.reload_s))

    async def _read_version(self) -> bytes | None:
        from apps.core.notify import ROUTING_VERSION_KEY

        try:
            return await self.redis.get(ROUTING_VERSION_KEY)  # type: ignore[attr-defined, no-any-return]
        except Exception as exc:  # Redis down: the periodic reload still picks up changes
            logger.warning("cannot read the routing version from Redis: %s", exc)
            return self.version

    async def close(self) -> None:
        """Close the DB thread's connection (a dropped test database must not see it) and stop the thread."""
        from django.db import connections

        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(self._executor, connections.close_all), timeout=5)
        except TimeoutError:
            logger.warning("the database thread did not close its connection within 5 s")
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

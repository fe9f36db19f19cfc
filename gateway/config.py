"""The gateway's own knobs, and the routing table kept fresh.

The table comes from a `TableSource` (in a running gateway `gateway/source.py`, the one module that reads the
studio's database) on a dedicated thread (never on the event loop). The gateway subscribes to the routing change
feed (`apps/core/notify.py` publishes it; no polling): a message that follows the last sequence number reloads
only the endpoints it names; a gap, a reconnect, or `reload_s` without a full reload reloads everything, so a
lost message only delays a change. The table is swapped whole: a request in flight keeps the table it started
with, so no reload can fail it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.routing import RoutingTable
from gateway.wire import METRICS_QUEUE, MIRROR_PAIRS_QUEUE, ROUTING_ALL, parse_routing_message
from runtime.http11 import Limits

logger = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingError(ValueError):
    """A STUDIO_GATEWAY_* variable has a value the gateway cannot use; the message names it."""


@dataclass(frozen=True)
class GatewaySettings:
    """What a gateway process can be tuned with (STUDIO_GATEWAY_* variables)."""

    max_body_bytes: int = 10 * 1024 * 1024
    reload_s: float = 60.0  # full reload regardless of the change feed (catches a publish lost while Redis was down)
    mirror_max_in_flight: int = 64  # shadow copies beyond this are dropped and counted, never queued
    instance_cooldown_s: float = 2.0  # an instance that refused a connection is skipped this long
    metrics_queue: str = METRICS_QUEUE
    mirror_pairs_queue: str = MIRROR_PAIRS_QUEUE
    mirror_sample_rate: float = 0.1  # fraction of mirrored requests whose live and shadow answers are kept
    metrics_flush_s: float = 1.0
    metrics_buffer: int = 20_000  # records kept while Redis is down (a record: one second of one deployment)
    metrics_enabled: bool = True  # off only to measure what counting costs (bench/gateway_vs_direct.py)
    redis_url: str = ""  # empty: the studio's REDIS_URL
    http: Limits = field(default_factory=Limits)  # what one client connection may cost (runtime/http11.py)

    @classmethod
    def from_env(cls) -> GatewaySettings:
        """Read from the environment; a bad value raises SettingError naming the variable."""
        limits = Limits()
        return cls(
            max_body_bytes=_int("STUDIO_GATEWAY_MAX_BODY_BYTES", cls.max_body_bytes),
            reload_s=float(_int("STUDIO_GATEWAY_RELOAD_S", int(cls.reload_s))),
            mirror_max_in_flight=_int("STUDIO_GATEWAY_MIRROR_MAX_IN_FLIGHT", cls.mirror_max_in_flight, minimum=0),
            metrics_queue=os.environ.get("STUDIO_GATEWAY_METRICS_QUEUE", METRICS_QUEUE),
            mirror_sample_rate=_int("STUDIO_GATEWAY_MIRROR_SAMPLE_PERCENT", 10, minimum=0) / 100,
            metrics_enabled=_bool("STUDIO_GATEWAY_METRICS", True),
            metrics_buffer=_int("STUDIO_GATEWAY_METRICS_BUFFER", cls.metrics_buffer, minimum=0),
            http=Limits(
                max_request_line_bytes=_int("STUDIO_GATEWAY_MAX_REQUEST_LINE_BYTES", limits.max_request_line_bytes),
                max_head_bytes=_int("STUDIO_GATEWAY_MAX_HEAD_BYTES", limits.max_head_bytes),
                max_headers=_int("STUDIO_GATEWAY_MAX_HEADERS", limits.max_headers),
                head_timeout_s=_seconds("STUDIO_GATEWAY_HEAD_TIMEOUT_S", limits.head_timeout_s),
                body_timeout_s=_seconds("STUDIO_GATEWAY_BODY_TIMEOUT_S", limits.body_timeout_s),
                keep_alive_s=_seconds("STUDIO_GATEWAY_KEEP_ALIVE_S", limits.keep_alive_s),
                max_connections=_int("STUDIO_GATEWAY_MAX_CONNECTIONS", limits.max_connections),
            ),
        )


def _int(name: str, default: int, *, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingError(f"{name} must be at least {minimum}, got {value}")
    return value


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise SettingError(f"{name} must be greater than 0, got {raw}")
    return value


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingError(f"{name} must be true or false, got {raw!r}")


class TableSource(Protocol):
    """Where the routing table comes from (`gateway/source.py` in a running gateway)."""

    version_key: str  # the Redis counter holding the sequence number of the last routing change
    channel: str  # the Redis pub/sub channel of the change feed ("<seq> <endpoint> ...")

    def redis_url(self) -> str:
        """The studio's Redis."""

    def load(self, names: Collection[str] | None = None) -> RoutingTable:
        """The whole table, or only the named endpoints (blocking: called on the table thread)."""

    def close(self) -> None:
        """Release what `load` holds (blocking: called on the table thread)."""


class RoutingConfig:
    """Holds the current routing table; reloads the endpoints the change feed names, everything after a gap."""

    def __init__(
        self,
        settings: GatewaySettings,
        redis: object,
        source: TableSource,
        db_thread_init: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.redis = redis  # redis.asyncio.Redis
        self.table: RoutingTable = {}
        self.seq: int | None = None  # the change feed's last sequence number heard
        self.applied_seq: int | None = None  # the sequence number the table in use is known to include
        self.loaded_at = 0.0
        self.reloads = 0  # full reloads
        self.partial_reloads = 0
        self.last_partial: frozenset[str] = frozenset()  # the endpoints the last partial reload read
        self.stopping = False
        self.redis_down = False
        self.on_reload: Callable[[RoutingTable], None] | None = None
        self._pubsub: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-db", initializer=db_thread_init)

    async def reload(self, names: frozenset[str] | None = None) -> None:
        """Load the whole table (or only the named endpoints) on the DB thread and swap it in."""
        loop = asyncio.get_running_loop()
        seq = self.seq
        if names is None:
            self.table = await loop.run_in_executor(self._executor, self.source.load)
            self.loaded_at = time.monotonic()
            self.reloads += 1
        else:
            fresh = await loop.run_in_executor(self._executor, functools.partial(self.source.load, names))
            table = dict(self.table)  # swapped whole: a request in flight keeps the table it started with
            for name in names:
                if name in fresh:
                    table[name] = fresh[name]
                else:
                    table.pop(name, None)  # deleted
            self.table = table
            self.partial_reloads += 1
            self.last_partial = names
        self.applied_seq = seq
        if self.on_reload is not None:
            self.on_reload(self.table)

    async def start(self) -> None:
        """Subscribe to the change feed, then the first full load; fails loudly if the database cannot be read."""
        await self._subscribe()
        await self.reload()

    async def _subscribe(self) -> None:
        # Subscribed before the sequence is read: a change after the read is then always heard.
        await self._drop_subscription()
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[attr-defined]
        try:
            await pubsub.subscribe(self.source.channel)
            raw = await self.redis.get(self.source.version_key)  # type: ignore[attr-defined]
        except Exception as exc:  # Redis down: keep serving; the watch loop retries and reloads on reconnect
            if not self.redis_down:  # one line when it goes, one when it is back: not one per retry
                logger.warning(
                    "cannot subscribe to the routing change feed in Redis (reloading from the database every "
                    "%.0f s until it is back): %s",
                    self.settings.reload_s,
                    exc,
                )
            self.redis_down = True
            await pubsub.aclose()
            self.seq = None
            return
        if self.redis_down:
            logger.warning("Redis answers again: following the routing change feed")
        self.redis_down = False
        self._pubsub = pubsub
        self.seq = int(raw or 0)

    async def _drop_subscription(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except Exception:  # already broken
                pass

    async def watch(self) -> None:
        """Follow the change feed forever: partial reloads in order, a full one after a gap and every reload_s."""
        wait = min(1.0, self.settings.reload_s)
        while not self.stopping:
            try:
                if self._pubsub is None:
                    await asyncio.sleep(wait)
                    await self._subscribe()
                    if self._pubsub is not None or time.monotonic() - self.loaded_at >= self.settings.reload_s:
                        await self.reload()  # changes while unsubscribed were not heard
                    continue
                changed: set[str] = set()
                full = False
                message = await self._pubsub.get_message(timeout=wait)
                while message is not None:  # coalesce what has arrived into one reload
                    full |= self._take(message, changed)
                    message = await self._pubsub.get_message(timeout=0)
                if full or time.monotonic() - self.loaded_at >= self.settings.reload_s:
                    await self.reload()
                elif changed:
                    await self.reload(frozenset(changed))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a flaky DB or Redis keeps the last good table
                logger.warning("routing table reload failed, keeping the previous one: %s", exc)
                await self._drop_subscription()  # resubscribing re-reads the sequence and reloads everything
                await asyncio.sleep(wait)

    def _take(self, message: dict[str, Any], changed: set[str]) -> bool:
        """Add a feed message's endpoints to `changed`; True when the whole table must be reloaded."""
        if message.get("type") != "message":
            return False
        parsed = parse_routing_message(message["data"])
        if parsed is None:
            return False
        seq, names = parsed
        if self.seq is not None and seq <= self.seq:
            return False  # already in the table (it was loaded after this change was counted)
        gap = self.seq is None or seq != self.seq + 1
        self.seq = seq
        if gap or ROUTING_ALL in names:
            return True
        changed.update(names)
        return False

    async def close(self) -> None:
        """Close the table thread's connection (a dropped test database must not see it) and stop the thread."""
        await self._drop_subscription()
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(self._executor, self.source.close), timeout=5)
        except TimeoutError:
            logger.warning("the database thread did not close its connection within 5 s")
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

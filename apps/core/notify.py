"""Tells every gateway process which endpoints' routing changed: a change feed in Redis.

Traffic and mirror changes, key regeneration, deployments appearing or going, and instances becoming ready
or unready call `routing_changed(name)` inside their transaction; once it commits, one Lua script (atomic, so
sequence numbers are published in order) increments the sequence `ROUTING_VERSION_KEY`, records it as that
endpoint's version in the hash `ROUTING_VERSIONS_KEY`, and publishes `"<seq> <name> ..."` on
`ROUTING_CHANNEL`. Gateways subscribe (no polling): a message whose sequence follows the last one they saw
reloads only the endpoints it names; a gap (a lost message, a reconnect) or `*` reloads the whole table, and
a slow periodic full reload catches a change whose publish failed while Redis was down.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import cache

import redis
from django.conf import settings
from django.db import transaction

from gateway.wire import ROUTING_ALL, ROUTING_CHANNEL, ROUTING_VERSION_KEY, ROUTING_VERSIONS_KEY

__all__ = ["ROUTING_CHANNEL", "ROUTING_VERSIONS_KEY", "ROUTING_VERSION_KEY", "redis_client", "routing_changed"]

logger = logging.getLogger(__name__)

# KEYS: sequence, per-endpoint versions, channel (pub/sub names are not keys, passed here for the prefix).
_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
for _, name in ipairs(ARGV) do redis.call('HSET', KEYS[2], name, seq) end
redis.call('PUBLISH', KEYS[3], seq .. ' ' .. table.concat(ARGV, ' '))
return seq
"""


@cache
def redis_client() -> redis.Redis:
    """One client per process for the studio's Redis (broker, cache and these counters)."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def routing_changed(names: str | Iterable[str] = ROUTING_ALL) -> None:
    """Tell the gateways, once the current transaction commits, that these endpoints' routing changed."""
    endpoints = [names] if isinstance(names, str) else sorted(set(names))
    if endpoints:
        transaction.on_commit(lambda: publish(endpoints))


def publish(endpoints: list[str]) -> int | None:
    """Publish a change of these endpoints now (`*`: everything); the new sequence number, None if Redis failed."""
    try:
        keys = (ROUTING_VERSION_KEY, ROUTING_VERSIONS_KEY, ROUTING_CHANNEL)
        return int(redis_client().eval(_PUBLISH, len(keys), *keys, *endpoints))  # type: ignore[arg-type]
    except redis.RedisError as exc:
        logger.warning("could not tell gateways that routing changed (their periodic reload will): %s", exc)
        return None

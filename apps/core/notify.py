"""Tells every gateway process that routing changed: a counter in Redis that gateways poll.

Traffic and mirror changes, key regeneration, deployments appearing or going, and instances
becoming ready or unready all bump it after their transaction commits; a gateway that sees a new
value reloads its routing table from the database (and reloads every few seconds regardless, so a
missed bump only delays a change, it never loses one).
"""

from __future__ import annotations

import logging
from functools import cache

import redis
from django.conf import settings
from django.db import transaction

from apps.core.keys import redis_key

ROUTING_VERSION_KEY = redis_key("routing:version")

logger = logging.getLogger(__name__)


@cache
def redis_client() -> redis.Redis:
    """One client per process for the studio's Redis (broker, cache and these counters)."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def routing_changed() -> None:
    """Bump the routing version once the current transaction commits."""
    transaction.on_commit(_bump)


def _bump() -> None:
    try:
        redis_client().incr(ROUTING_VERSION_KEY)
    except redis.RedisError as exc:
        logger.warning("could not tell gateways that routing changed (they reload within seconds): %s", exc)

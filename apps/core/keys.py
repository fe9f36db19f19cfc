"""The one prefix of every key the studio writes in Redis (STUDIO_REDIS_PREFIX, default `studio:`).

The routing version, the deployment locks, the metrics and mirror-pair lists take their names from
`redis_key`; the cache, the channel layer and Celery's queues take the prefix through settings.py.
Two studios, or two test runs, that share one Redis then never read or drain each other's keys.

Defined with the wire format (gateway/wire.py), which the gateway process shares with the studio.
"""

from __future__ import annotations

from gateway.wire import REDIS_PREFIX, redis_key

__all__ = ["REDIS_PREFIX", "redis_key"]

"""The one prefix of every key the studio writes in Redis (STUDIO_REDIS_PREFIX, default `studio:`).

The routing version, the deployment locks, the metrics and mirror-pair lists take their names from
`redis_key`; the cache, the channel layer and Celery's queues take the prefix through settings.py.
Two studios, or two test runs, that share one Redis then never read or drain each other's keys.

Read from the environment here rather than from Django's settings: the gateway process and the wire
format module import these names as plain constants.
"""

from __future__ import annotations

import os
import re

_ALLOWED = re.compile(r"[A-Za-z0-9:_.-]+")


def _prefix_from_environment() -> str:
    raw = os.environ.get("STUDIO_REDIS_PREFIX", "studio:")
    # No glob characters: whoever cleans up matches `<prefix>*`.
    if not _ALLOWED.fullmatch(raw):
        raise ValueError(f"STUDIO_REDIS_PREFIX must be letters, digits and ':_.-' only, got {raw!r}")
    return raw


REDIS_PREFIX = _prefix_from_environment()


def redis_key(name: str) -> str:
    """The full Redis key for `name`, under the studio's prefix."""
    return REDIS_PREFIX + name

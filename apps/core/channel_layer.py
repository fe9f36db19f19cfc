"""The websockets' channel layer: channels_redis's, on Redis connections without a socket timeout.

channels_redis receives for a web process with one BZPOPMIN that blocks `brpop_timeout` (5 s) at a
time. redis-py's connections time a read out after `socket_timeout`, 5 s by default, so a socket with
nothing to receive for 5 s could lose that race: its receive raised `redis.exceptions.TimeoutError` and
uvicorn printed "Exception in ASGI application". And with a socket timeout redis-py sends each command
through `asyncio.wait_for`, which on Python 3.11 loses a cancellation that arrives as the send finishes:
a closed page's receive, cancelled by Channels, went on reading until a read timed out, and uvicorn
printed `StopConsumer` followed by that TimeoutError. Without a socket timeout neither happens; a
Redis that goes away still ends the reads (the connection closes; TCP keepalive for a silent peer),
and Redis answers the blocking read after each wait.
"""

from __future__ import annotations

from typing import Any

from channels_redis.core import RedisChannelLayer


class ChannelLayer(RedisChannelLayer):
    """channels_redis's layer on one Redis URL, blocking `wait_s` per read, with no socket timeout."""

    def __init__(self, *, url: str, wait_s: float, **options: Any) -> None:
        host: dict[str, Any] = {"address": url, "socket_timeout": None}
        if not url.startswith("unix:"):
            host["socket_keepalive"] = True
        super().__init__(hosts=[host], **options)
        self.brpop_timeout = wait_s

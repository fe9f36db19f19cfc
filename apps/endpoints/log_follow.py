"""Live logs: one reader per followed log, however many pages follow it.

A followed log is a `LogStream` (endpoint, deployment, container, instance or every instance). The
first socket of a web process that follows a stream starts one asyncio task there (`FOLLOWERS`);
a Redis key with a short expiry makes one task, across every web process, the owner. The owner
reads the log's last lines through apps.endpoints.logs (the one way logs are read) every
`INTERVAL_S`, and broadcasts the lines that are new to the stream's group; the
sockets relay. A socket that joins asks for a snapshot (the owner sends the last lines, marked
`reset`, on its next read), so the page starts from the log as it is. The task ends, and gives the
key up, when no socket of its process follows the stream any more; a process that still has
followers takes over within one expiry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import cast

from channels.db import database_sync_to_async

from apps.core import broadcast
from apps.core.keys import redis_key
from apps.core.notify import redis_client
from apps.endpoints import selectors
from apps.endpoints.backends.base import Container
from apps.endpoints.logs import deployment_logs

logger = logging.getLogger(__name__)

KEY_PREFIX = redis_key("logs:follow:")
INTERVAL_S = 1.0  # between two reads of a followed log
OWNER_TTL_S = 5.0  # a reader that stopped without giving its key up is replaced after this long
WINDOW_LINES = 1000  # how many last lines each read compares with the previous read
MAX_LINES = 5000  # the most lines a page can ask for (the Logs form's limit)

# Extends the owner's key only while it still holds it; gives it up only if it is still its own.
_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class LogStream:
    """One followed log: a container of one instance of a deployment, or of all its instances (`instance=""`)."""

    endpoint: str
    deployment: str
    container: str
    instance: str = ""

    @property
    def group(self) -> str:
        return broadcast.logs_group(
            endpoint=self.endpoint, deployment=self.deployment, container=self.container, instance=self.instance
        )

    @property
    def key(self) -> str:
        """The Redis key naming the task that reads this stream (its value is that task's token)."""
        ident = "\n".join((self.endpoint, self.deployment, self.container, self.instance)).encode()
        return KEY_PREFIX + hashlib.sha256(ident).hexdigest()[:40]

    @property
    def wants_key(self) -> str:
        """A Redis list of line counts that joining sockets push: the owner answers with a snapshot."""
        return self.key + ":wants"


def new_lines(previous: list[str] | None, current: list[str]) -> tuple[list[str], bool]:
    """The lines of `current` (a log's last lines now) that come after `previous` (its last lines before).

    Returns (lines, reset): with `reset` the lines are the whole of `current`, because there is nothing
    to continue (no previous read, or the log was replaced, or more lines were written than one read
    holds). The longest end of `previous` that begins `current` is taken as what was already shown.
    """
    if previous is None:
        return current, True
    if not previous:
        return current, False
    first = current[0] if current else None
    for start in range(len(previous)):
        overlap = len(previous) - start
        if overlap <= len(current) and previous[start] == first and previous[start:] == current[:overlap]:
            return current[overlap:], False
    return current, True


def _read(stream: LogStream, lines: int) -> str | None:
    """The stream's last `lines` lines, or None while the deployment or its instance is not there."""
    deployment = selectors.deployment_find(endpoint=stream.endpoint, name=stream.deployment)
    if deployment is None:
        return None
    try:
        return deployment_logs(
            deployment=deployment,
            container=cast(Container, stream.container),  # the consumer accepted only the two containers
            lines=lines,
            instance=stream.instance or None,
        )
    except Exception as exc:  # noqa: BLE001  (a log being rotated or an instance going away: try on the next read)
        logger.info("log of %s not read this time: %s", stream, exc)
        return None


@dataclass
class _Follower:
    listeners: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    reads: int = 0


class LogFollowers:
    """The followers of this process: per stream, the sockets here that follow it and the task reading it."""

    def __init__(self) -> None:
        self._followers: dict[LogStream, _Follower] = {}

    async def join(self, stream: LogStream, channel_name: str, *, lines: int) -> None:
        """A socket follows `stream`: start its reader if this process has none, and ask for a snapshot."""
        follower = self._followers.get(stream)
        if follower is None or (
            follower.task is not None and follower.task.get_loop() is not asyncio.get_running_loop()
        ):
            follower = self._followers[stream] = _Follower()  # none yet, or one of an event loop that has ended
        follower.listeners.add(channel_name)
        await asyncio.to_thread(self._want_snapshot, stream, min(max(lines, 1), MAX_LINES))
        if follower.task is None or follower.task.done() or follower.task.cancelling():
            # (a reader being stopped by the last socket's leave cannot serve this one: start another)
            follower.task = asyncio.create_task(self._follow(stream, follower), name=f"log follower {stream}")

    async def leave(self, stream: LogStream, channel_name: str) -> None:
        """A socket stops following; the reader ends at its next turn once no socket here follows."""
        follower = self._followers.get(stream)
        if follower is None:
            return
        follower.listeners.discard(channel_name)
        if not follower.listeners and follower.task is not None:
            follower.task.cancel()
            await asyncio.gather(follower.task, return_exceptions=True)

    def following(self) -> dict[LogStream, int]:
        """Streams that have a running reader in this process, with how many sockets here follow each."""
        return {
            stream: len(follower.listeners)
            for stream, follower in self._followers.items()
            if follower.task is not None and not follower.task.done()
        }

    def reads(self, stream: LogStream) -> int:
        """How many times this process read the stream (one reader, whatever the number of sockets)."""
        follower = self._followers.get(stream)
        return follower.reads if follower else 0

    @staticmethod
    def _want_snapshot(stream: LogStream, lines: int) -> None:
        client = redis_client()
        client.rpush(stream.wants_key, lines)
        client.expire(stream.wants_key, 60)

    @staticmethod
    def _owns(stream: LogStream, token: str) -> bool:
        """Take the stream's key if it is free, else extend it if it is ours; True when this task reads."""
        client = redis_client()
        ttl_ms = int(OWNER_TTL_S * 1000)
        if client.set(stream.key, token, nx=True, px=ttl_ms):
            return True
        return bool(client.eval(_REFRESH, 1, stream.key, token, ttl_ms))

    @staticmethod
    def _wanted(stream: LogStream) -> int:
        """The most lines a socket that joined since the last read asked for (0: no snapshot wanted)."""
        client = redis_client()
        with client.pipeline() as pipe:
            pipe.lrange(stream.wants_key, 0, -1)
            pipe.delete(stream.wants_key)
            wants, _ = pipe.execute()
        return max((int(value) for value in wants), default=0)

    @staticmethod
    def _release(stream: LogStream, token: str) -> None:
        redis_client().eval(_RELEASE, 1, stream.key, token)

    async def _follow(self, stream: LogStream, follower: _Follower) -> None:
        token = uuid.uuid4().hex
        previous: list[str] | None = None
        window = WINDOW_LINES
        try:
            while follower.listeners:
                if await asyncio.to_thread(self._owns, stream, token):
                    wanted = await asyncio.to_thread(self._wanted, stream)
                    window = max(window, wanted)
                    text = await database_sync_to_async(_read)(stream, window)
                    follower.reads += 1
                    if text is not None:
                        current = text.splitlines()
                        lines, reset = new_lines(None if wanted else previous, current)
                        if lines or reset:
                            await broadcast.send_async(stream.group, _payload(stream, lines, reset))
                        previous = current
                else:
                    previous = None  # another process reads; if this one takes over, it starts with a snapshot
                await asyncio.sleep(INTERVAL_S)
        finally:
            try:
                await asyncio.shield(asyncio.to_thread(self._release, stream, token))
            except Exception as exc:  # noqa: BLE001  (the key expires by itself)
                logger.warning("could not give up following %s: %s", stream, exc)


def _payload(stream: LogStream, lines: list[str], reset: bool) -> broadcast.LogLinesPayload:
    return {
        "type": "deployment.logs",
        "endpoint": stream.endpoint,
        "deployment": stream.deployment,
        "container": stream.container,
        "instance": stream.instance,
        "lines": lines,
        "reset": reset,
    }


FOLLOWERS = LogFollowers()

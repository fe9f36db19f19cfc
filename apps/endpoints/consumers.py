"""Websocket consumers: they authorize, join a group and relay what apps/core/broadcast.py sends.

No consumer reads on a timer. Deployment states and traffic are announced by the services that
change them, Monitoring figures by the metrics task after each ingest, and a followed log by the one
reader of that log (apps/endpoints/log_follow.py), which the first socket that follows it starts.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from apps.accounts.permissions import SOCKET_FORBIDDEN, socket_refusal
from apps.core import broadcast
from apps.endpoints import selectors
from apps.endpoints.forms import LOG_CONTAINERS
from apps.endpoints.log_follow import FOLLOWERS, MAX_LINES, LogStream

# Close codes: the browser's script reconnects on a close it did not ask for, except on these (and 4401, 4403).
NOT_FOUND = 4404
BAD_REQUEST = 4400


class _Relay(AsyncWebsocketConsumer):
    groups_joined: list[str]

    async def relay(self, message: dict[str, Any]) -> None:
        """A payload from broadcast.send: forward it as JSON."""
        await self.send(text_data=json.dumps(message["payload"]))

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _join(self, group: str) -> None:
        self.groups_joined = [*getattr(self, "groups_joined", []), group]
        await self.channel_layer.group_add(group, self.channel_name)

    async def _refused(self, action: str = "read") -> bool:
        """Close the socket unless its user's role includes the action (a refusal names the role it needs)."""
        refusal = await database_sync_to_async(socket_refusal)(self.scope.get("user"), action)
        if refusal is None:
            return False
        code, reason = refusal
        if code == SOCKET_FORBIDDEN:
            await self.accept()  # so the browser gets the close code and the reason
        await self.close(code=code, reason=reason)
        return True

    async def _endpoint_known(self, action: str = "read") -> str | None:
        """The endpoint of the URL for a user whose role allows the action; else the socket is closed."""
        name = self.scope["url_route"]["kwargs"]["name"]
        if await self._refused(action):
            return None
        if not await database_sync_to_async(selectors.endpoint_exists)(name=name):
            await self.close(code=NOT_FOUND)
            return None
        return str(name)


class StudioConsumer(_Relay):
    """Every open page: deployment state changes anywhere in the studio."""

    async def connect(self) -> None:
        if await self._refused():
            return
        await self._join(broadcast.STUDIO_GROUP)
        await self.accept()


class EndpointConsumer(_Relay):
    """One endpoint's pages: its deployments' states and its traffic."""

    async def connect(self) -> None:
        name = await self._endpoint_known()
        if name is None:
            return
        await self._join(broadcast.endpoint_group(name))
        await self.accept()


class ChartsConsumer(_Relay):
    """The Monitoring tab: the endpoint's figures, as the metrics task pushes them after each ingest."""

    async def connect(self) -> None:
        name = await self._endpoint_known()
        if name is None:
            return
        await self._join(broadcast.charts_group(name))
        await self.accept()


class LogsConsumer(_Relay):
    """Follow a deployment's log: its last lines on joining, then each new line, from the log's one reader."""

    stream: LogStream | None = None

    async def connect(self) -> None:
        query = {key: values[-1] for key, values in parse_qs(self.scope.get("query_string", b"").decode()).items()}
        name = await self._endpoint_known("logs.read")
        if name is None:
            return
        container = query.get("container", "inference-server")
        lines = query.get("lines", "100")
        if container not in LOG_CONTAINERS or not lines.isdigit():
            await self.close(code=BAD_REQUEST)
            return
        deployment = query.get("deployment", "")
        if await database_sync_to_async(selectors.deployment_find)(endpoint=name, name=deployment) is None:
            await self.close(code=NOT_FOUND)
            return
        self.stream = LogStream(
            endpoint=name, deployment=deployment, container=container, instance=query.get("instance", "")
        )
        await self._join(self.stream.group)
        await self.accept()
        await FOLLOWERS.join(self.stream, self.channel_name, lines=min(max(int(lines), 1), MAX_LINES))

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        if self.stream is not None:
            await FOLLOWERS.leave(self.stream, self.channel_name)

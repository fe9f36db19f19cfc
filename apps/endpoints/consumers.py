"""Websocket consumers: they authorize, join a group and relay (apps/core/broadcast.py sends).

Two streams have no writer to push them, so their consumer reads on a timer and relays what
changed: the Monitoring tab's figures (from the metrics rollups) and a followed log.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from apps.core import broadcast

CHARTS_INTERVAL_S = 2.0
LOGS_INTERVAL_S = 1.0


class _Relay(AsyncWebsocketConsumer):
    groups_joined: list[str]

    async def relay(self, message: dict[str, Any]) -> None:
        """A payload from broadcast.send: forward it as JSON."""
        await self.send(text_data=json.dumps(message["payload"]))

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        task = getattr(self, "poller", None)
        if task is not None:
            task.cancel()

    async def _join(self, group: str) -> None:
        self.groups_joined = [*getattr(self, "groups_joined", []), group]
        await self.channel_layer.group_add(group, self.channel_name)

    def _signed_in(self) -> bool:
        user = self.scope.get("user")
        return bool(user is not None and user.is_authenticated)


@database_sync_to_async
def _endpoint_exists(name: str) -> bool:
    from apps.endpoints.models import Endpoint

    return Endpoint.objects.filter(name=name).exists()


class StudioConsumer(_Relay):
    """Every open page: deployment state changes anywhere in the studio."""

    async def connect(self) -> None:
        if not self._signed_in():
            await self.close(code=4401)
            return
        await self._join(broadcast.STUDIO_GROUP)
        await self.accept()


class EndpointConsumer(_Relay):
    """One endpoint's pages: its deployments' states and its traffic."""

    async def connect(self) -> None:
        name = self.scope["url_route"]["kwargs"]["name"]
        if not self._signed_in():
            await self.close(code=4401)
            return
        if not await _endpoint_exists(name):
            await self.close(code=4404)
            return
        await self._join(broadcast.endpoint_group(name))
        await self.accept()


@database_sync_to_async
def _figures(name: str) -> dict[str, Any] | None:
    from apps.monitoring.charts import monitoring_figures

    return monitoring_figures(endpoint=name)


class ChartsConsumer(_Relay):
    """The Monitoring tab: the endpoint's figures, sent again whenever they change."""

    async def connect(self) -> None:
        name = self.scope["url_route"]["kwargs"]["name"]
        if not self._signed_in():
            await self.close(code=4401)
            return
        if not await _endpoint_exists(name):
            await self.close(code=4404)
            return
        self.endpoint = name
        await self._join(broadcast.endpoint_group(name))
        await self.accept()
        self.poller = asyncio.create_task(self._poll())

    async def relay(self, message: dict[str, Any]) -> None:
        # Only chart payloads belong on this socket; state and traffic go to the page's other socket.
        if message["payload"].get("type") == "endpoint.charts":
            await super().relay(message)

    async def _poll(self) -> None:
        last = ""
        while True:
            figures = await _figures(self.endpoint)
            if figures:
                payload: broadcast.ChartsPayload = {
                    "type": "endpoint.charts",
                    "endpoint": self.endpoint,
                    "figures": figures,
                }
                text = json.dumps(payload, default=str)
                if text != last:
                    last = text
                    await self.send(text_data=text)
            await asyncio.sleep(CHARTS_INTERVAL_S)


@database_sync_to_async
def _log_text(name: str, deployment: str, container: str, lines: int, instance: str | None) -> str | None:
    from apps.endpoints.logs import deployment_logs
    from apps.endpoints.selectors import deployment_find

    row = deployment_find(endpoint=name, name=deployment)
    if row is None:
        return None
    try:
        return deployment_logs(deployment=row, container=container, lines=lines, instance=instance)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001  (a log being rotated or an instance going away: try again next tick)
        return None


class LogsConsumer(_Relay):
    """Follow a deployment's log: the last lines, sent again whenever they change."""

    async def connect(self) -> None:
        name = self.scope["url_route"]["kwargs"]["name"]
        query = {key: values[-1] for key, values in parse_qs(self.scope.get("query_string", b"").decode()).items()}
        if not self._signed_in():
            await self.close(code=4401)
            return
        container = query.get("container", "inference-server")
        lines = query.get("lines", "100")
        if container not in ("inference-server", "storage-initializer") or not lines.isdigit():
            await self.close(code=4400)
            return
        if not await _endpoint_exists(name):
            await self.close(code=4404)
            return
        self.args = (
            name,
            query.get("deployment", ""),
            container,
            min(max(int(lines), 1), 5000),
            query.get("instance") or None,
        )
        await self.accept()
        self.poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        last: str | None = None
        while True:
            text = await _log_text(*self.args)
            if text is not None and text != last:
                last = text
                payload: broadcast.LogPayload = {
                    "type": "deployment.logs",
                    "deployment": self.args[1],
                    "container": self.args[2],
                    "content": text,
                }
                await self.send(text_data=json.dumps(payload))
            await asyncio.sleep(LOGS_INTERVAL_S)

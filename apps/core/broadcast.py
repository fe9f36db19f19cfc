"""The one module every websocket message goes through: typed payloads sent to Channels groups.

It knows no app: callers build the payload (a TypedDict below) and name the group. A change made in
a transaction is announced with `send_on_commit`, whose builder runs after the commit (so a
rolled-back change is never announced and the payload shows the row as committed). Consumers join
the groups named here and relay what arrives, nothing more.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from typing import Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

STUDIO_GROUP = "studio"  # every open page: deployment states shown anywhere


def endpoint_group(name: str) -> str:
    """The group of the pages that show one endpoint (states and traffic)."""
    return f"endpoint.{name}"


def charts_group(name: str) -> str:
    """The group of the Monitoring tabs open on one endpoint."""
    return f"charts.{name}"


def logs_group(*, endpoint: str, deployment: str, container: str, instance: str) -> str:
    """The group of the pages following one log (one container of one instance, or of all of them)."""
    # Group names are limited to 100 ASCII letters, digits, dashes, underscores and periods.
    key = "\n".join((endpoint, deployment, container, instance)).encode()
    return f"logs.{hashlib.sha256(key).hexdigest()[:40]}"


class DeploymentStatePayload(TypedDict):
    type: Literal["deployment.state"]
    endpoint: str
    deployment: str
    uid: str
    state: str
    reason: str
    message: str
    ready_instances: int
    instance_count: int


class EndpointTrafficPayload(TypedDict):
    type: Literal["endpoint.traffic"]
    endpoint: str
    traffic: dict[str, int]
    mirror_traffic: dict[str, int]


class RolloutPayload(TypedDict):
    """A rollout moved or was judged again: pages showing the endpoint redraw its rollout panel and list row."""

    type: Literal["endpoint.rollout"]
    endpoint: str
    state: str
    position: str
    message: str


class ChartsPayload(TypedDict):
    """An endpoint's Monitoring figures (Plotly figure dicts, JSON-ready), sent after each metrics ingest."""

    type: Literal["endpoint.charts"]
    endpoint: str
    figures: dict[str, object]


class LogLinesPayload(TypedDict):
    """New lines of a followed log; with `reset` they are its last lines and replace what the page shows."""

    type: Literal["deployment.logs"]
    endpoint: str
    deployment: str
    container: str
    instance: str
    lines: list[str]
    reset: bool


Payload = DeploymentStatePayload | EndpointTrafficPayload | RolloutPayload | ChartsPayload | LogLinesPayload


def _message(payload: Payload) -> dict[str, object]:
    return {"type": "relay", "payload": payload}


def send(group: str, payload: Payload) -> None:
    """Send a payload to a group now; a broken channel layer is logged, never raised to the caller."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, _message(payload))
    except Exception as exc:  # noqa: BLE001  (the write already committed; a lost push only delays the page)
        logger.warning("could not push %s to %s: %s", payload["type"], group, exc)


async def send_async(group: str, payload: Payload) -> None:
    """`send` for code already running in an event loop (the log followers)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group, _message(payload))
    except Exception as exc:  # noqa: BLE001  (a lost push only delays the page)
        logger.warning("could not push %s to %s: %s", payload["type"], group, exc)


def send_on_commit(build: Callable[[], Iterable[tuple[str, Payload]]]) -> None:
    """Once the current transaction commits, send the (group, payload) pairs `build` returns then."""
    transaction.on_commit(lambda: _send_all(build))


def _send_all(build: Callable[[], Iterable[tuple[str, Payload]]]) -> None:
    for group, payload in build():
        send(group, payload)

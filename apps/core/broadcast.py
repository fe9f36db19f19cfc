"""The one module every websocket message goes through: typed payloads sent to Channels groups.

Services call `deployment_changed` / `endpoint_changed` inside their transaction; the message is
sent after commit (a rolled-back change is never announced) with the row as it was committed.
Consumers join the groups named here and relay what arrives, nothing more.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

if TYPE_CHECKING:
    from apps.endpoints.models import Deployment

logger = logging.getLogger(__name__)

STUDIO_GROUP = "studio"  # every open page: deployment states shown anywhere


def endpoint_group(name: str) -> str:
    """The group of the pages that show one endpoint."""
    return f"endpoint.{name}"


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


class ChartsPayload(TypedDict):
    type: Literal["endpoint.charts"]
    endpoint: str
    figures: dict[str, object]


class LogPayload(TypedDict):
    type: Literal["deployment.logs"]
    deployment: str
    container: str
    content: str


Payload = DeploymentStatePayload | EndpointTrafficPayload | ChartsPayload | LogPayload


def send(group: str, payload: Payload) -> None:
    """Send a payload to a group now; a broken channel layer is logged, never raised to the caller."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "relay", "payload": payload})
    except Exception as exc:  # noqa: BLE001  (the write already committed; a lost push only delays the page)
        logger.warning("could not push %s to %s: %s", payload["type"], group, exc)


def deployment_state_payload(deployment: Deployment) -> DeploymentStatePayload:
    """What pages need to redraw a deployment's state badge."""
    return {
        "type": "deployment.state",
        "endpoint": deployment.endpoint.name,
        "deployment": deployment.name,
        "uid": str(deployment.uid),
        "state": deployment.state,
        "reason": deployment.reason,
        "message": deployment.message[:500],
        "ready_instances": deployment.ready_instances,
        "instance_count": deployment.instance_count,
    }


def _send_deployment(deployment_pk: int) -> None:
    from apps.endpoints.models import Deployment

    deployment = Deployment.objects.select_related("endpoint").filter(pk=deployment_pk).first()
    if deployment is None:
        return
    payload = deployment_state_payload(deployment)
    send(endpoint_group(deployment.endpoint.name), payload)
    send(STUDIO_GROUP, payload)


def _send_endpoint(endpoint_pk: int) -> None:
    from apps.endpoints.models import Endpoint

    endpoint = Endpoint.objects.filter(pk=endpoint_pk).first()
    if endpoint is None:
        return
    payload: EndpointTrafficPayload = {
        "type": "endpoint.traffic",
        "endpoint": endpoint.name,
        "traffic": endpoint.traffic,
        "mirror_traffic": endpoint.mirror_traffic,
    }
    send(endpoint_group(endpoint.name), payload)


def deployment_changed(deployment_pk: int) -> None:
    """Announce the deployment's state to every open page once the current transaction commits."""
    transaction.on_commit(lambda: _send_deployment(deployment_pk))


def endpoint_changed(endpoint_pk: int) -> None:
    """Announce the endpoint's traffic and mirror to its open pages once the current transaction commits."""
    transaction.on_commit(lambda: _send_endpoint(endpoint_pk))

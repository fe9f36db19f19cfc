"""What apps/endpoints tells open pages: deployment states and endpoint traffic, as the committed rows
say, through apps/core/broadcast.py once the transaction that changed them commits."""

from __future__ import annotations

from apps.core import broadcast
from apps.endpoints.models import Deployment, Endpoint


def deployment_state_payload(deployment: Deployment) -> broadcast.DeploymentStatePayload:
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


def endpoint_traffic_payload(endpoint: Endpoint) -> broadcast.EndpointTrafficPayload:
    """What pages need to redraw an endpoint's traffic split and mirror."""
    return {
        "type": "endpoint.traffic",
        "endpoint": endpoint.name,
        "traffic": endpoint.traffic,
        "mirror_traffic": endpoint.mirror_traffic,
    }


def _deployment_messages(deployment_pk: int) -> list[tuple[str, broadcast.Payload]]:
    deployment = Deployment.objects.select_related("endpoint").filter(pk=deployment_pk).first()
    if deployment is None:
        return []
    payload = deployment_state_payload(deployment)
    return [(broadcast.endpoint_group(deployment.endpoint.name), payload), (broadcast.STUDIO_GROUP, payload)]


def _endpoint_messages(endpoint_pk: int) -> list[tuple[str, broadcast.Payload]]:
    endpoint = Endpoint.objects.filter(pk=endpoint_pk).first()
    if endpoint is None:
        return []
    payload = endpoint_traffic_payload(endpoint)
    # The studio group too: the endpoint list and every page showing the split redraw it.
    return [(broadcast.endpoint_group(endpoint.name), payload), (broadcast.STUDIO_GROUP, payload)]


def deployment_changed(deployment_pk: int) -> None:
    """Announce the deployment's state to every open page once the current transaction commits."""
    broadcast.send_on_commit(lambda: _deployment_messages(deployment_pk))


def endpoint_changed(endpoint_pk: int) -> None:
    """Announce the endpoint's traffic and mirror to its open pages once the current transaction commits."""
    broadcast.send_on_commit(lambda: _endpoint_messages(endpoint_pk))

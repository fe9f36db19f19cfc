"""The deployment timeline's writer: every state change, backend step and decision is one event row.

Its own module so that everything that records (services, the reconcile loop, costs' autoscale)
imports it without importing the services, which queue the reconcile tasks.
"""

from __future__ import annotations

from apps.endpoints import announce
from apps.endpoints.models import Deployment, DeploymentEvent


def event_record(
    *,
    deployment: Deployment,
    reason: str,
    message: str = "",
    type: str = DeploymentEvent.Type.NORMAL,
    instance: str = "",
    container: str = "",
    duration_ms: int | None = None,
) -> DeploymentEvent:
    """Add an entry to the deployment's timeline."""
    event = DeploymentEvent.objects.create(
        deployment=deployment,
        reason=reason,
        message=message,
        type=type,
        instance=instance,
        container=container,
        duration_ms=duration_ms,
    )
    announce.deployment_changed(deployment.pk)  # open pages redraw the deployment after commit
    return event

"""What apps/rollouts tells open pages: a rollout's state and position, after the transaction commits."""

from __future__ import annotations

from apps.core import broadcast
from apps.rollouts.gates import where
from apps.rollouts.models import Rollout


def _messages(rollout_pk: int) -> list[tuple[str, broadcast.Payload]]:
    rollout = Rollout.objects.select_related("endpoint").filter(pk=rollout_pk).first()
    if rollout is None:
        return []
    payload: broadcast.RolloutPayload = {
        "type": "endpoint.rollout",
        "endpoint": rollout.endpoint.name,
        "state": rollout.state,
        "position": where(rollout.spec, phase=rollout.phase, step=rollout.step),
        "message": rollout.message[:500],
    }
    return [(broadcast.endpoint_group(rollout.endpoint.name), payload), (broadcast.STUDIO_GROUP, payload)]


def rollout_changed(rollout_pk: int) -> None:
    """Announce the rollout to every open page once the current transaction commits."""
    broadcast.send_on_commit(lambda: _messages(rollout_pk))

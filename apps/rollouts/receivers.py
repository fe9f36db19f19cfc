"""apps.endpoints' signals as rollouts hears them: a running rollout guards the endpoint's split."""

from __future__ import annotations

from typing import Any

from apps.core.errors import Conflict
from apps.endpoints.models import Endpoint
from apps.rollouts import gates, selectors, services


def traffic_changing(
    sender: Any, *, endpoint: Endpoint, user: Any, force: bool, origin: str, traffic: Any, **_: Any
) -> None:
    """Refuse a manual traffic change while a rollout runs, unless forced (which aborts the rollout)."""
    if origin == "rollout":
        return
    rollout = selectors.rollout_active(endpoint=endpoint)
    if rollout is None:
        return
    if force:
        services.rollout_abort_for_manual_change(rollout=rollout, user=user, traffic=traffic)
        return
    where = gates.where(rollout.spec, phase=rollout.phase, step=rollout.step)
    raise Conflict(
        f"online endpoint {endpoint.name!r} has a rollout of {rollout.target!r} in progress ({rollout.state}, "
        f"{where}); its traffic moves with the rollout: pause or abort it "
        f"(studio online-endpoint rollout abort --name {endpoint.name}), or pass --force, which aborts it",
        field="traffic",
    )

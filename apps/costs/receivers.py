"""What costs does when apps.endpoints tells it something (connected in CostsConfig.ready())."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apps.costs import services
from apps.endpoints.models import Deployment


def instances_capacity_changed(
    sender: Any, *, deployment: Deployment, instances: list[str], holds_capacity: bool, at: datetime, **_: Any
) -> None:
    """Instances started or stopped holding capacity: the capacity history (InstanceRun) follows."""
    services.capacity_instances(deployment=deployment, instances=instances, holds_capacity=holds_capacity, at=at)

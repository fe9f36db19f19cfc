"""The instance-type catalog and Azure's core quota: what a deployment's size is and how many cores it holds.

The seeded catalog is Azure VM sizes (prices are apps.costs' business: `apps/costs/prices.py`). The quota
rule is Azure's: a deployment of N instances holds ceil(1.2 × N) × vCPUs cores (20 % kept for upgrades),
counted for every deployment that runs or is about to (not Deleting, Failed or Canceled: the same states
cost nothing in apps.costs).
"""

from __future__ import annotations

import math

from django.conf import settings
from django.db.models import QuerySet

from apps.core.errors import ApplicationError
from apps.endpoints.models import Deployment, InstanceType, ProvisioningState

# name, vCPUs, memory GiB, GPUs, GPU model
CATALOG: list[tuple[str, int, str, int, str]] = [
    ("Standard_DS1_v2", 1, "3.5", 0, ""),
    ("Standard_DS2_v2", 2, "7", 0, ""),
    ("Standard_DS3_v2", 4, "14", 0, ""),
    ("Standard_DS4_v2", 8, "28", 0, ""),
    ("Standard_DS5_v2", 16, "56", 0, ""),
    ("Standard_F2s_v2", 2, "4", 0, ""),
    ("Standard_F4s_v2", 4, "8", 0, ""),
    ("Standard_F8s_v2", 8, "16", 0, ""),
    ("Standard_F16s_v2", 16, "32", 0, ""),
    ("Standard_E2s_v3", 2, "16", 0, ""),
    ("Standard_E4s_v3", 4, "32", 0, ""),
    ("Standard_E8s_v3", 8, "64", 0, ""),
    ("Standard_E16s_v3", 16, "128", 0, ""),
    ("Standard_NC4as_T4_v3", 4, "28", 1, "T4"),
    ("Standard_NC8as_T4_v3", 8, "56", 1, "T4"),
    ("Standard_NC16as_T4_v3", 16, "110", 1, "T4"),
    ("Standard_NC6s_v3", 6, "112", 1, "V100"),
    ("Standard_NC12s_v3", 12, "224", 2, "V100"),
    ("Standard_NC24ads_A100_v4", 24, "220", 1, "A100"),
]

# States whose instances hold no cores against the quota (and cost nothing: apps.costs uses the same states).
QUOTA_FREE_STATES = (ProvisioningState.DELETING, ProvisioningState.FAILED, ProvisioningState.CANCELED)


def instance_type_get(*, name: str) -> InstanceType:
    """A catalog row by name."""
    try:
        return InstanceType.objects.get(name=name)
    except InstanceType.DoesNotExist:
        known = ", ".join(InstanceType.objects.values_list("name", flat=True)[:40])
        raise ApplicationError(
            f"instance_type: unknown size {name!r}; known sizes: {known}", field="instance_type"
        ) from None


def instance_type_find(*, name: str) -> InstanceType | None:
    """A catalog row by name, or None (a form shows no estimate for a size that is not one)."""
    return InstanceType.objects.filter(name=name).first()


def instance_types_list() -> QuerySet[InstanceType]:
    """The instance-type catalog, smallest first."""
    return InstanceType.objects.all()


def instance_type_names() -> list[str]:
    """The catalog's instance type names, alphabetically (the size pickers of the deployment cards)."""
    return sorted(InstanceType.objects.values_list("name", flat=True))


def cores_needed(*, instance_count: int, vcpus: int) -> int:
    """Azure's quota rule: ceil(1.2 × instances) × cores, keeping 20 % for upgrades."""
    return math.ceil(1.2 * instance_count) * vcpus


def quota_used(*, exclude: Deployment | None = None) -> int:
    """Cores held by every deployment that runs or is about to."""
    vcpus = dict(InstanceType.objects.values_list("name", "vcpus"))
    used = 0
    rows = Deployment.objects.exclude(state__in=QUOTA_FREE_STATES)
    if exclude is not None:
        rows = rows.exclude(pk=exclude.pk)
    for instance_type, count in rows.values_list("instance_type", "instance_count"):
        used += cores_needed(instance_count=count, vcpus=vcpus.get(instance_type, 0))
    return used


def quota_summary() -> dict[str, int]:
    """Cores of the workspace quota: the limit, held (with the reserve) and free."""
    used = quota_used()
    limit = settings.STUDIO_CORE_QUOTA
    return {"limit": limit, "used": used, "free": max(0, limit - used)}


def quota_view() -> dict[str, int]:
    """Cores of the quota: used by instances, reserved for upgrades (the 20 %), and free."""
    summary = quota_summary()
    vcpus = dict(InstanceType.objects.values_list("name", "vcpus"))
    used = 0
    held = 0
    rows = Deployment.objects.exclude(state__in=QUOTA_FREE_STATES).values_list("instance_type", "instance_count")
    for instance_type, count in rows:
        cores = vcpus.get(instance_type, 0)
        used += count * cores
        held += cores_needed(instance_count=count, vcpus=cores)
    return {"limit": summary["limit"], "used": used, "reserved": held - used, "free": max(0, summary["limit"] - held)}

"""Writes of costs: the capacity history, instance-type prices and autoscale settings.

The capacity history (InstanceRun: one row per instance from start to stop) follows what the reconcile
loop sees: apps.endpoints sends `instances_capacity_changed` whenever instances start or stop holding
capacity, and `capacity_instances` (connected in CostsConfig.ready()) opens or closes their runs in the
same transaction. Costs are instance-seconds of these runs × the instance type's price, so they are exact,
not sampled. Runs left open by a deployment row deleted without passing through reconcile are closed by
the minute beat task (`capacity_close_orphans`), so they stop costing then.

`capacity_record(deployment=..., instance_count=N, at=...)` sets a deployment's open runs to N at once,
level-triggered and idempotent: for a caller that knows a count rather than instance names.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.audit import record
from apps.core.errors import ApplicationError, NotFound
from apps.costs.autoscale import validate_setting
from apps.costs.models import AutoscaleSetting, InstancePrice, InstanceRun
from apps.costs.selectors import idle_deployments, money
from apps.endpoints.catalog import instance_type_find
from apps.endpoints.events import event_record
from apps.endpoints.models import Deployment, DeploymentEvent


@transaction.atomic
def capacity_instances(*, deployment: Deployment, instances: list[str], holds_capacity: bool, at: datetime) -> int:
    """Open a run for each named instance that now holds capacity (unless one is open), or close their open runs;
    returns how many runs it opened or closed. What the reconcile loop tells costs (apps.endpoints.signals)."""
    open_runs = InstanceRun.objects.filter(deployment=deployment, instance__in=instances, stopped_at__isnull=True)
    if not holds_capacity:
        return open_runs.update(stopped_at=at)
    running = set(open_runs.values_list("instance", flat=True))
    started = [name for name in instances if name not in running]
    InstanceRun.objects.bulk_create(
        InstanceRun(
            deployment=deployment,
            endpoint_name=deployment.endpoint.name,
            deployment_name=deployment.name,
            instance=name,
            instance_type=deployment.instance_type,
            started_at=at,
        )
        for name in started
    )
    return len(started)


@transaction.atomic
def capacity_record(*, deployment: Deployment, instance_count: int, at: datetime | None = None) -> int:
    """Make the open capacity runs of a deployment match the instances running now (see the module doc)."""
    if instance_count < 0:
        raise ValueError(f"instance_count must be 0 or more, got {instance_count}")
    at = at or timezone.now()
    # The row lock serializes two workers recording the same deployment at once.
    deployment = Deployment.objects.select_for_update().select_related("endpoint").get(pk=deployment.pk)
    open_runs = list(
        InstanceRun.objects.select_for_update()
        .filter(deployment=deployment, stopped_at__isnull=True)
        .order_by("started_at", "id")
    )
    changes = 0
    # A run of another size (the deployment was updated to a new instance type) ends now.
    keep = []
    for run in open_runs:
        if run.instance_type != deployment.instance_type:
            run.stopped_at = at
            run.save(update_fields=["stopped_at"])
            changes += 1
        else:
            keep.append(run)
    # Fewer instances: the newest runs stop first.
    while len(keep) > instance_count:
        run = keep.pop()
        run.stopped_at = max(at, run.started_at)
        run.save(update_fields=["stopped_at"])
        changes += 1
    used = {run.instance for run in keep}
    slot = 0
    while len(keep) < instance_count:
        slot += 1
        name = f"{deployment.name}-{slot}"
        if name in used:
            continue
        keep.append(
            InstanceRun.objects.create(
                deployment=deployment,
                endpoint_name=deployment.endpoint.name,
                deployment_name=deployment.name,
                instance=name,
                instance_type=deployment.instance_type,
                started_at=at,
            )
        )
        used.add(name)
        changes += 1
    return changes


def capacity_close_orphans(*, at: datetime | None = None) -> int:
    """Stop the open runs of deployments deleted without a final capacity_record(..., 0); returns how many."""
    return InstanceRun.objects.filter(deployment__isnull=True, stopped_at__isnull=True).update(
        stopped_at=at or timezone.now()
    )


def idle_flag(*, now: datetime | None = None) -> int:
    """Put an Idle warning on the timeline of each deployment idle while costing money, once per idle spell."""
    now = now or timezone.now()
    flagged = 0
    for row in idle_deployments(now=now):
        deployment = Deployment.objects.filter(endpoint__name=row["endpoint"], name=row["deployment"]).first()
        if deployment is None or deployment.events.filter(reason="Idle", created_at__gte=row["idle_since"]).exists():
            continue
        event_record(
            deployment=deployment,
            reason="Idle",
            type=DeploymentEvent.Type.WARNING,
            message=(
                f"no request since {row['idle_since']:%Y-%m-%d %H:%M} UTC while {row['instances']} instance(s) "
                f"cost {money(row['cost_per_hour'])} {settings.STUDIO_CURRENCY} an hour"
            ),
        )
        flagged += 1
    return flagged


@transaction.atomic
def instance_type_price_set(*, name: str, price_per_hour: Any) -> InstancePrice:
    """Change the price per hour of an instance type (costs are recomputed with it)."""
    if instance_type_find(name=name) is None:
        raise NotFound(f"instance type {name!r} does not exist")
    try:
        price = Decimal(str(price_per_hour))
    except (InvalidOperation, ValueError):
        raise ApplicationError(
            f"price_per_hour: expected a number, got {price_per_hour!r}", field="price_per_hour"
        ) from None
    if not price.is_finite() or price < 0 or price >= Decimal("1000000"):
        raise ApplicationError(
            f"price_per_hour: expected a price from 0 to 999999.9999, got {price_per_hour!r}", field="price_per_hour"
        )
    if price != price.quantize(Decimal("0.0001")):
        raise ApplicationError(
            f"price_per_hour: at most 4 decimal places, got {price_per_hour!r}", field="price_per_hour"
        )
    row = InstancePrice.objects.select_for_update().filter(instance_type=name).first()
    before = str(row.price_per_hour) if row else None
    row = row or InstancePrice(instance_type=name)
    row.price_per_hour = price.quantize(Decimal("0.0001"))
    row.full_clean()
    row.save()
    after = str(row.price_per_hour)
    target = f"instance type {name}"
    record("price.set", target=target, before={"price_per_hour": before}, after={"price_per_hour": after})
    return row


@transaction.atomic
def autoscale_set(*, deployment: Deployment, spec: Any) -> AutoscaleSetting:
    """Create or replace a deployment's autoscale setting after validating every field."""
    clean = validate_setting(spec)
    setting, _ = AutoscaleSetting.objects.select_for_update().get_or_create(deployment=deployment)
    for key, value in clean.items():
        setattr(setting, key, value)
    setting.active_profile = ""
    setting.full_clean()
    setting.save()
    target = f"autoscale of deployment {deployment.name}"
    record("autoscale.set", endpoint=deployment.endpoint.name, target=target, after=_jsonable(clean))
    return setting


def _jsonable(value: Any) -> Any:
    """An autoscale spec as JSON for the audit trail (times and decimals as text)."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


@transaction.atomic
def autoscale_delete(*, deployment: Deployment) -> None:
    """Turn autoscale off for a deployment (its instance count stays where it is)."""
    if AutoscaleSetting.objects.filter(deployment=deployment).delete()[0]:
        target = f"autoscale of deployment {deployment.name}"
        record("autoscale.delete", endpoint=deployment.endpoint.name, target=target)

"""Reads of costs: exact cost from the capacity history, per deployment, endpoint and day; month to
date and projection; cost per 1000 requests and the share spent on mirrored traffic; idle
deployments; quota.

Cost of a run = its instance-seconds inside the window × the instance type's price per hour / 3600,
in Decimal. Prices are the catalog's current ones (editing a price re-prices the history).
"""

from __future__ import annotations

import calendar
import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.costs.models import InstanceRun, InstanceType
from apps.endpoints.models import Deployment
from apps.endpoints.selectors import cores_needed, quota_summary
from apps.monitoring.selectors import last_request_at, requests_by_deployment

SECONDS_PER_HOUR = Decimal(3600)
MONEY = Decimal("0.000001")


def seconds_between(start: datetime, end: datetime) -> Decimal:
    """Exact seconds from start to end (microseconds included), never negative."""
    delta = end - start
    if delta.total_seconds() <= 0:
        return Decimal(0)
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / Decimal(1_000_000)


def money(value: Decimal) -> str:
    """A cost as shown: six decimals, in the studio's currency."""
    return str(value.quantize(MONEY))


@dataclass(frozen=True)
class CostRow:
    """Instance-seconds and cost of one (day, endpoint, deployment, instance type)."""

    day: str
    endpoint: str
    deployment: str
    instance_type: str
    instance_seconds: Decimal
    price_per_hour: Decimal

    @property
    def cost(self) -> Decimal:
        return self.instance_seconds * self.price_per_hour / SECONDS_PER_HOUR


def _runs(*, start: datetime, end: datetime, endpoint: str | None = None) -> Any:
    rows = InstanceRun.objects.filter(started_at__lt=end).filter(Q(stopped_at__isnull=True) | Q(stopped_at__gt=start))
    if endpoint:
        rows = rows.filter(endpoint_name=endpoint)
    return rows


def _day_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def cost_rows(
    *, start: datetime, end: datetime, endpoint: str | None = None, now: datetime | None = None
) -> list[CostRow]:
    """Cost per UTC day, endpoint, deployment and instance type over [start, end); runs still open end at now."""
    now = now or timezone.now()
    end = min(end, now)
    prices = dict(InstanceType.objects.values_list("name", "price_per_hour"))
    seconds: dict[tuple[str, str, str, str], Decimal] = {}
    for run in _runs(start=start, end=end, endpoint=endpoint):
        run_start = max(run.started_at, start)
        run_end = min(run.stopped_at or end, end)
        day = _day_start(run_start)
        while day < run_end:
            next_day = day + timedelta(days=1)
            piece = seconds_between(max(run_start, day), min(run_end, next_day))
            if piece:
                key = (day.date().isoformat(), run.endpoint_name, run.deployment_name, run.instance_type)
                seconds[key] = seconds.get(key, Decimal(0)) + piece
            day = next_day
    return [
        CostRow(
            day=day,
            endpoint=ep,
            deployment=deployment,
            instance_type=instance_type,
            instance_seconds=value,
            price_per_hour=prices.get(instance_type, Decimal(0)),
        )
        for (day, ep, deployment, instance_type), value in sorted(seconds.items())
    ]


def _sum(rows: Iterable[CostRow]) -> Decimal:
    return sum((row.cost for row in rows), Decimal(0))


def costs_summary(
    *, start: datetime, end: datetime, endpoint: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Costs over a window per endpoint and deployment, with cost per 1000 requests and mirrored share."""
    rows = cost_rows(start=start, end=end, endpoint=endpoint, now=now)
    requests = requests_by_deployment(start=start, end=end, endpoint=endpoint)
    by_deployment: dict[tuple[str, str], list[CostRow]] = {}
    for row in rows:
        by_deployment.setdefault((row.endpoint, row.deployment), []).append(row)
    for key in requests:
        if key[1]:  # "" counts requests refused before routing (401, 404): no deployment, no cost
            by_deployment.setdefault(key, [])
    deployments: list[dict[str, Any]] = []
    endpoints: dict[str, dict[str, Any]] = {}
    for (ep, deployment), group in sorted(by_deployment.items()):
        cost = _sum(group)
        counts = requests.get((ep, deployment), {"live": 0, "mirrored": 0})
        answered = counts["live"] + counts["mirrored"]
        # A deployment's cost is split between live and mirrored traffic by the requests it answered.
        mirrored_cost = cost * counts["mirrored"] / answered if answered else Decimal(0)
        deployments.append(
            {
                "endpoint": ep,
                "deployment": deployment,
                "instance_hours": sum((row.instance_seconds for row in group), Decimal(0)) / SECONDS_PER_HOUR,
                "cost": cost,
                "live_requests": counts["live"],
                "mirrored_requests": counts["mirrored"],
                "cost_per_1000_requests": cost * 1000 / answered if answered else None,
                "mirrored_cost": mirrored_cost,
            }
        )
        total = endpoints.setdefault(
            ep, {"endpoint": ep, "cost": Decimal(0), "mirrored_cost": Decimal(0), "live_requests": 0}
        )
        total["cost"] += cost
        total["mirrored_cost"] += mirrored_cost
        total["live_requests"] += counts["live"]
    for total in endpoints.values():
        # Per live request: mirrored answers are never sent to a client, so they add cost, not value.
        live = total["live_requests"]
        total["cost_per_1000_requests"] = total["cost"] * 1000 / live if live else None
        total["mirrored_share"] = total["mirrored_cost"] / total["cost"] if total["cost"] else None
    grand = _sum(rows)
    mirrored = sum((d["mirrored_cost"] for d in deployments), Decimal(0))
    return {
        "start": start,
        "end": end,
        "currency": settings.STUDIO_CURRENCY,
        "cost": grand,
        "mirrored_cost": mirrored,
        "mirrored_share": mirrored / grand if grand else None,
        "endpoints": [endpoints[name] for name in sorted(endpoints)],
        "deployments": deployments,
        "days": _by_day(rows),
    }


def _by_day(rows: list[CostRow]) -> list[dict[str, Any]]:
    days: dict[str, Decimal] = {}
    for row in rows:
        days[row.day] = days.get(row.day, Decimal(0)) + row.cost
    return [{"day": day, "cost": cost} for day, cost in sorted(days.items())]


def burn_rate_per_hour(*, endpoint: str | None = None) -> Decimal:
    """What the instances running now cost per hour."""
    prices = dict(InstanceType.objects.values_list("name", "price_per_hour"))
    rows = InstanceRun.objects.filter(stopped_at__isnull=True)
    if endpoint:
        rows = rows.filter(endpoint_name=endpoint)
    return sum((prices.get(t, Decimal(0)) for t in rows.values_list("instance_type", flat=True)), Decimal(0))


def month_summary(*, endpoint: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Month to date (UTC calendar month) and the month projected at the current hourly burn rate."""
    now = (now or timezone.now()).astimezone(UTC)
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    month_end = month_start + timedelta(days=calendar.monthrange(now.year, now.month)[1])
    to_date = _sum(cost_rows(start=month_start, end=now, endpoint=endpoint, now=now))
    rate = burn_rate_per_hour(endpoint=endpoint)
    remaining = seconds_between(now, month_end) / SECONDS_PER_HOUR
    return {
        "currency": settings.STUDIO_CURRENCY,
        "month": month_start.strftime("%Y-%m"),
        "month_to_date": to_date,
        "burn_rate_per_hour": rate,
        "projected_month": to_date + rate * remaining,
    }


def idle_deployments(*, now: datetime | None = None, minutes: int | None = None) -> list[dict[str, Any]]:
    """Deployments that cost money now and answered no request for `minutes` (STUDIO_IDLE_MINUTES)."""
    now = now or timezone.now()
    window = timedelta(minutes=minutes or settings.STUDIO_IDLE_MINUTES)
    prices = dict(InstanceType.objects.values_list("name", "price_per_hour"))
    running: dict[tuple[str, str], dict[str, Any]] = {}
    for run in InstanceRun.objects.filter(stopped_at__isnull=True, started_at__lte=now):
        entry = running.setdefault(
            (run.endpoint_name, run.deployment_name),
            {"since": run.started_at, "instances": 0, "cost_per_hour": Decimal(0)},
        )
        entry["since"] = min(entry["since"], run.started_at)
        entry["instances"] += 1
        entry["cost_per_hour"] += prices.get(run.instance_type, Decimal(0))
    idle = []
    for (ep, deployment), entry in sorted(running.items()):
        last = last_request_at(endpoint=ep, deployment=deployment)
        idle_since = max(entry["since"], last) if last else entry["since"]
        if now - idle_since >= window:
            idle.append(
                {
                    "endpoint": ep,
                    "deployment": deployment,
                    "idle_since": idle_since,
                    "last_request_at": last,
                    "instances": entry["instances"],
                    "cost_per_hour": entry["cost_per_hour"],
                }
            )
    return idle


def quota_view() -> dict[str, int]:
    """Cores of the quota: used by instances, reserved for upgrades (the 20 %), and free."""
    summary = quota_summary()
    vcpus = dict(InstanceType.objects.values_list("name", "vcpus"))
    used = 0
    held = 0
    from apps.endpoints.selectors import QUOTA_FREE_STATES

    rows = Deployment.objects.exclude(state__in=QUOTA_FREE_STATES).values_list("instance_type", "instance_count")
    for instance_type, count in rows:
        cores = vcpus.get(instance_type, 0)
        used += count * cores
        held += cores_needed(instance_count=count, vcpus=cores)
    return {"limit": summary["limit"], "used": used, "reserved": held - used, "free": max(0, summary["limit"] - held)}


def endpoint_costs_brief(*, endpoint: str, now: datetime | None = None) -> dict[str, Any]:
    """The cost figures `online-endpoint show` adds: month to date, projection, burn rate, last 24 h."""
    now = now or timezone.now()
    month = month_summary(endpoint=endpoint, now=now)
    day = costs_summary(start=now - timedelta(hours=24), end=now, endpoint=endpoint, now=now)
    return {
        "currency": month["currency"],
        "month_to_date": money(month["month_to_date"]),
        "projected_month": money(month["projected_month"]),
        "cost_per_hour": money(month["burn_rate_per_hour"]),
        "last_24h": money(day["cost"]),
        "mirrored_share_24h": None if day["mirrored_share"] is None else round(float(day["mirrored_share"]), 4),
    }


CSV_COLUMNS = ["day", "endpoint", "deployment", "instance_type", "instance_hours", "price_per_hour", "cost", "currency"]


def costs_csv(*, rows: list[CostRow]) -> str:
    """The cost rows as CSV (one line per day, endpoint, deployment and instance type)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row.day,
                row.endpoint,
                row.deployment,
                row.instance_type,
                str((row.instance_seconds / SECONDS_PER_HOUR).quantize(MONEY)),
                str(row.price_per_hour),
                money(row.cost),
                settings.STUDIO_CURRENCY,
            ]
        )
    return out.getvalue()


def endpoint_costs(*, endpoint: str, days: int = 30, now: datetime | None = None) -> dict[str, Any]:
    """Accrued costs of one endpoint for the studio's pages: month figures and per deployment per day."""
    now = now or timezone.now()
    start = _day_start(now) - timedelta(days=days - 1)
    summary = costs_summary(start=start, end=now, endpoint=endpoint, now=now)
    month = month_summary(endpoint=endpoint, now=now)
    per_day: dict[str, dict[str, Decimal]] = {}
    for row in cost_rows(start=start, end=now, endpoint=endpoint, now=now):
        per_day.setdefault(row.deployment, {})
        per_day[row.deployment][row.day] = per_day[row.deployment].get(row.day, Decimal(0)) + row.cost
    return {
        "currency": month["currency"],
        "month_to_date": month["month_to_date"],
        "projected_month": month["projected_month"],
        "cost_per_hour": month["burn_rate_per_hour"],
        "window_days": days,
        "cost": summary["cost"],
        "mirrored_share": summary["mirrored_share"],
        "deployments": summary["deployments"],
        "per_deployment_per_day": {name: sorted(days_.items()) for name, days_ in sorted(per_day.items())},
        "idle": [row for row in idle_deployments(now=now) if row["endpoint"] == endpoint],
    }

"""Reads of costs: what deployments cost now and this month (`cost_book`, the one definition every
page, the API and the CLI show), exact cost from the capacity history per deployment, endpoint and
day, cost per 1000 requests and the share spent on mirrored traffic, idle deployments, prices.

Cost of a run = its instance-seconds inside the window × the instance type's price per hour / 3600,
in Decimal. Prices are the catalog's current ones (editing a price re-prices the history). Figures
stay exact Decimals until they are shown: pages round once, to the cent, halves up (`cents`); the
API shows six decimals (`money`).
"""

from __future__ import annotations

import calendar
import csv
import io
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.costs.models import InstancePrice, InstanceRun
from apps.endpoints.catalog import QUOTA_FREE_STATES
from apps.endpoints.models import Deployment
from apps.monitoring.selectors import last_request_at, requests_by_deployment

SECONDS_PER_HOUR = Decimal(3600)
HOURS_PER_DAY = Decimal(24)
HOURS_PER_MONTH = Decimal(730)  # the month of Azure's pricing calculator: 365 × 24 / 12 hours
MONEY = Decimal("0.000001")
CENT = Decimal("0.01")
NO_PRICE = Decimal("0.0000")  # what an instance type without a price costs (none has, once seeded)


def seconds_between(start: datetime, end: datetime) -> Decimal:
    """Exact seconds from start to end (microseconds included), never negative."""
    delta = end - start
    if delta.total_seconds() <= 0:
        return Decimal(0)
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / Decimal(1_000_000)


def money(value: Decimal) -> str:
    """A cost as the API and the CLI show it: six decimals, in the studio's currency."""
    return str(value.quantize(MONEY))


def cents(value: Decimal) -> Decimal:
    """A cost as the pages show it: rounded once, to the cent, halves up."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def instance_type_prices() -> dict[str, Decimal]:
    """Price per hour of every instance type that has one, by name."""
    return dict(InstancePrice.objects.values_list("instance_type", "price_per_hour"))


def price_per_hour(*, instance_type: str) -> Decimal:
    """What one instance of `instance_type` costs an hour (NO_PRICE for a type without a price)."""
    price = InstancePrice.objects.filter(instance_type=instance_type).values_list("price_per_hour", flat=True).first()
    return NO_PRICE if price is None else price


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


def _runs(
    *, start: datetime, end: datetime, endpoint: str | None = None, endpoints: Collection[str] | None = None
) -> Any:
    rows = InstanceRun.objects.filter(started_at__lt=end).filter(Q(stopped_at__isnull=True) | Q(stopped_at__gt=start))
    if endpoint:
        rows = rows.filter(endpoint_name=endpoint)
    if endpoints is not None:
        rows = rows.filter(endpoint_name__in=list(endpoints))
    return rows


def _day_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def cost_rows(
    *,
    start: datetime,
    end: datetime,
    endpoint: str | None = None,
    endpoints: Collection[str] | None = None,
    now: datetime | None = None,
) -> list[CostRow]:
    """Cost per UTC day, endpoint, deployment and instance type over [start, end); runs still open end at now.
    Of one endpoint, of the named ones (a list page: its work follows the page, not the studio) or of all."""
    now = now or timezone.now()
    end = min(end, now)
    prices = instance_type_prices()
    seconds: dict[tuple[str, str, str, str], Decimal] = {}
    for run in _runs(start=start, end=end, endpoint=endpoint, endpoints=endpoints):
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
    *,
    start: datetime,
    end: datetime,
    endpoint: str | None = None,
    endpoints: Collection[str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Costs over a window per endpoint and deployment, with cost per 1000 requests and mirrored share."""
    rows = cost_rows(start=start, end=end, endpoint=endpoint, endpoints=endpoints, now=now)
    requests = requests_by_deployment(start=start, end=end, endpoint=endpoint, endpoints=endpoints)
    by_deployment: dict[tuple[str, str], list[CostRow]] = {}
    for row in rows:
        by_deployment.setdefault((row.endpoint, row.deployment), []).append(row)
    for key in requests:
        if key[1]:  # "" counts requests refused before routing (401, 404): no deployment, no cost
            by_deployment.setdefault(key, [])
    deployments: list[dict[str, Any]] = []
    totals: dict[str, dict[str, Any]] = {}
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
        total = totals.setdefault(
            ep, {"endpoint": ep, "cost": Decimal(0), "mirrored_cost": Decimal(0), "live_requests": 0}
        )
        total["cost"] += cost
        total["mirrored_cost"] += mirrored_cost
        total["live_requests"] += counts["live"]
    for total in totals.values():
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
        "endpoints": [totals[name] for name in sorted(totals)],
        "deployments": deployments,
        "days": _by_day(rows),
    }


def _by_day(rows: list[CostRow]) -> list[dict[str, Any]]:
    days: dict[str, Decimal] = {}
    for row in rows:
        days[row.day] = days.get(row.day, Decimal(0)) + row.cost
    return [{"day": day, "cost": cost} for day, cost in sorted(days.items())]


# --- what it costs: the one definition of every cost figure the studio shows ---


@dataclass(frozen=True)
class CostFigures:
    """What a deployment, an endpoint or the whole studio costs, exact (round only where it is shown).

    `per_hour` is the rate at the current size: the price of the instance type × the instance count
    of every deployment that holds instances (not Deleting, Failed or Canceled: the states that hold
    no quota either). A day is 24 of those hours, a month 730 (Azure's pricing calculator).
    `month_to_date` is what the capacity history accrued since the 1st of this UTC month;
    `projected_month` adds the rate for the hours left in that calendar month.
    """

    per_hour: Decimal = Decimal(0)
    month_to_date: Decimal = Decimal(0)
    hours_left_in_month: Decimal = Decimal(0)

    @property
    def per_day(self) -> Decimal:
        return self.per_hour * HOURS_PER_DAY

    @property
    def per_month(self) -> Decimal:
        return self.per_hour * HOURS_PER_MONTH

    @property
    def projected_month(self) -> Decimal:
        return self.month_to_date + self.per_hour * self.hours_left_in_month

    def __add__(self, other: CostFigures) -> CostFigures:
        return CostFigures(
            per_hour=self.per_hour + other.per_hour,
            month_to_date=self.month_to_date + other.month_to_date,
            hours_left_in_month=self.hours_left_in_month,
        )


@dataclass(frozen=True)
class CostBook:
    """Cost figures per deployment, per endpoint and in total, computed once for one moment."""

    currency: str
    month: str
    hours_left_in_month: Decimal
    deployments: dict[tuple[str, str], CostFigures] = field(default_factory=dict)
    endpoints: dict[str, CostFigures] = field(default_factory=dict)
    total: CostFigures = CostFigures()

    def deployment(self, endpoint: str, name: str) -> CostFigures:
        """One deployment's figures (zero for one that neither runs nor ran this month)."""
        return self.deployments.get((endpoint, name), CostFigures(hours_left_in_month=self.hours_left_in_month))

    def endpoint(self, name: str) -> CostFigures:
        """One endpoint's figures: its deployments', and this month's cost of the ones deleted since."""
        return self.endpoints.get(name, CostFigures(hours_left_in_month=self.hours_left_in_month))


def _month(now: datetime) -> tuple[datetime, Decimal]:
    """The start of now's UTC calendar month and the hours left in it."""
    now = now.astimezone(UTC)
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    month_end = month_start + timedelta(days=calendar.monthrange(now.year, now.month)[1])
    return month_start, seconds_between(now, month_end) / SECONDS_PER_HOUR


def rate_per_hour(*, instance_type: str, instance_count: int, prices: dict[str, Decimal] | None = None) -> Decimal:
    """What `instance_count` instances of `instance_type` cost an hour (0 for a type not in the catalog)."""
    if prices is None:
        prices = {instance_type: price_per_hour(instance_type=instance_type)}
    return prices.get(instance_type, Decimal(0)) * instance_count


def cost_estimate(*, instance_type: str, instance_count: int) -> CostFigures:
    """What a deployment of that size would cost (the create forms show it before anything runs)."""
    return CostFigures(per_hour=rate_per_hour(instance_type=instance_type, instance_count=instance_count))


def cost_book(
    *, endpoint: str | None = None, endpoints: Collection[str] | None = None, now: datetime | None = None
) -> CostBook:
    """What every deployment and endpoint (or one endpoint's, or the named ones') costs an hour, a day and a
    month at its current size, what it cost this month so far and what the month will come to."""
    now = now or timezone.now()
    month_start, hours_left = _month(now)
    prices = instance_type_prices()
    rates: dict[tuple[str, str], Decimal] = {}
    deployments = Deployment.objects.all()
    if endpoint:
        deployments = deployments.filter(endpoint__name=endpoint)
    if endpoints is not None:
        deployments = deployments.filter(endpoint__name__in=list(endpoints))
    for ep, name, instance_type, count, state in deployments.values_list(
        "endpoint__name", "name", "instance_type", "instance_count", "state"
    ):
        billed = state not in QUOTA_FREE_STATES
        rates[(ep, name)] = (
            rate_per_hour(instance_type=instance_type, instance_count=count, prices=prices) if billed else Decimal(0)
        )
    accrued: dict[tuple[str, str], Decimal] = {}
    for row in cost_rows(start=month_start, end=now, endpoint=endpoint, endpoints=endpoints, now=now):
        key = (row.endpoint, row.deployment)
        accrued[key] = accrued.get(key, Decimal(0)) + row.cost
    zero = CostFigures(hours_left_in_month=hours_left)
    by_deployment: dict[tuple[str, str], CostFigures] = {}
    by_endpoint: dict[str, CostFigures] = {}
    total = zero
    for key in sorted({*rates, *accrued}):
        figures = CostFigures(
            per_hour=rates.get(key, Decimal(0)),
            month_to_date=accrued.get(key, Decimal(0)),
            hours_left_in_month=hours_left,
        )
        by_deployment[key] = figures
        by_endpoint[key[0]] = by_endpoint.get(key[0], zero) + figures
        total += figures
    return CostBook(
        currency=settings.STUDIO_CURRENCY,
        month=month_start.strftime("%Y-%m"),
        hours_left_in_month=hours_left,
        deployments=by_deployment,
        endpoints=by_endpoint,
        total=total,
    )


def split_cost_effect(
    *, endpoint: str, deployments: list[str], traffic: dict[str, int], mirror_to: str = ""
) -> dict[str, Any]:
    """What a traffic split means for the bill: the deployments cost the same whatever the split (instances
    are billed, not requests); name the ones it leaves serving nothing, and what they cost a day."""
    book = cost_book(endpoint=endpoint)
    per_day = {name: book.deployment(endpoint, name).per_day for name in deployments}
    idle = [name for name in deployments if not traffic.get(name) and name != mirror_to]
    total = sum(traffic.get(name, 0) for name in deployments)
    return {
        "all_per_day": sum(per_day.values(), Decimal(0)),
        "idle": idle,
        "idle_per_day": sum((per_day[name] for name in idle), Decimal(0)),
        "total": total,
        "split_ok": total in (0, 100),
    }


def month_summary(*, endpoint: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Month to date (UTC calendar month), the rate at the current size and the month projected with it."""
    book = cost_book(endpoint=endpoint, now=now)
    figures = book.endpoint(endpoint) if endpoint else book.total
    return {
        "currency": book.currency,
        "month": book.month,
        "month_to_date": figures.month_to_date,
        "burn_rate_per_hour": figures.per_hour,
        "projected_month": figures.projected_month,
    }


def idle_deployments(*, now: datetime | None = None, minutes: int | None = None) -> list[dict[str, Any]]:
    """Deployments that cost money now and answered no request for `minutes` (STUDIO_IDLE_MINUTES)."""
    now = now or timezone.now()
    window = timedelta(minutes=minutes or settings.STUDIO_IDLE_MINUTES)
    prices = instance_type_prices()
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


def cost_figures_view(figures: CostFigures, *, currency: str) -> dict[str, Any]:
    """Cost figures as the API shows them (money as strings with six decimals)."""
    return {
        "currency": currency,
        "cost_per_hour": money(figures.per_hour),
        "cost_per_day": money(figures.per_day),
        "cost_per_month": money(figures.per_month),
        "month_to_date": money(figures.month_to_date),
        "projected_month": money(figures.projected_month),
    }


def endpoint_costs_brief(*, endpoint: str, now: datetime | None = None) -> dict[str, Any]:
    """The cost figures `online-endpoint show` adds: rate, month to date, projection, last 24 h."""
    now = now or timezone.now()
    book = cost_book(endpoint=endpoint, now=now)
    day = costs_summary(start=now - timedelta(hours=24), end=now, endpoint=endpoint, now=now)
    return {
        **cost_figures_view(book.endpoint(endpoint), currency=book.currency),
        "last_24h": money(day["cost"]),
        "mirrored_share_24h": None if day["mirrored_share"] is None else round(float(day["mirrored_share"]), 4),
    }


def endpoints_costs_briefs(*, endpoints: Collection[str], now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """`endpoint_costs_brief` for a page of endpoints in a fixed number of queries (lists: API and pages)."""
    now = now or timezone.now()
    book = cost_book(endpoints=endpoints, now=now)
    day = costs_summary(start=now - timedelta(hours=24), end=now, endpoints=endpoints, now=now)
    last_24h = {row["endpoint"]: row for row in day["endpoints"]}
    briefs: dict[str, dict[str, Any]] = {}
    for name in endpoints:
        row = last_24h.get(name)
        share = row["mirrored_share"] if row else None
        briefs[name] = {
            **cost_figures_view(book.endpoint(name), currency=book.currency),
            "last_24h": money(row["cost"] if row else Decimal(0)),
            "mirrored_share_24h": None if share is None else round(float(share), 4),
        }
    return briefs


def deployments_costs_briefs(*, endpoint: str, now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """`deployment_costs_brief` for every deployment of the endpoint at once (one cost book)."""
    book = cost_book(endpoint=endpoint, now=now)
    return {name: cost_figures_view(book.deployment(ep, name), currency=book.currency) for ep, name in book.deployments}


def deployment_costs_brief(*, endpoint: str, deployment: str, now: datetime | None = None) -> dict[str, Any]:
    """The cost figures `online-deployment show` adds: rate at the current size, month to date, projection."""
    book = cost_book(endpoint=endpoint, now=now)
    return cost_figures_view(book.deployment(endpoint, deployment), currency=book.currency)


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


def endpoint_costs(
    *, endpoint: str, days: int = 30, now: datetime | None = None, book: CostBook | None = None
) -> dict[str, Any]:
    """Accrued costs of one endpoint for the studio's pages: month figures (from `book` when the page has
    one) and per deployment per day."""
    now = now or timezone.now()
    start = _day_start(now) - timedelta(days=days - 1)
    summary = costs_summary(start=start, end=now, endpoint=endpoint, now=now)
    figures = (book or cost_book(endpoint=endpoint, now=now)).endpoint(endpoint)
    per_day: dict[str, dict[str, Decimal]] = {}
    for row in cost_rows(start=start, end=now, endpoint=endpoint, now=now):
        per_day.setdefault(row.deployment, {})
        per_day[row.deployment][row.day] = per_day[row.deployment].get(row.day, Decimal(0)) + row.cost
    return {
        "currency": settings.STUDIO_CURRENCY,
        "month_to_date": figures.month_to_date,
        "projected_month": figures.projected_month,
        "cost_per_hour": figures.per_hour,
        "window_days": days,
        "cost": summary["cost"],
        "mirrored_share": summary["mirrored_share"],
        "deployments": summary["deployments"],
        "per_deployment_per_day": {name: sorted(days_.items()) for name, days_ in sorted(per_day.items())},
        "idle": [row for row in idle_deployments(now=now) if row["endpoint"] == endpoint],
    }

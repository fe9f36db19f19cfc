"""Costs computed from the capacity history, checked against hand computations."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.costs import selectors, services
from apps.costs.models import InstancePrice, InstanceRun
from apps.endpoints import catalog
from apps.endpoints.models import Deployment
from apps.monitoring import charts
from apps.monitoring import services as monitoring
from tests import factories
from tests.monitoring.gateway import Request, aggregate, push

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 10, 22, 0, tzinfo=UTC)
DS2 = Decimal("0.1460")  # Standard_DS2_v2 per hour, the seeded catalog price
DS3 = Decimal("0.2930")


def hours(n: float | str) -> timedelta:
    return timedelta(hours=float(n))


@pytest.fixture
def blue() -> object:
    return factories.deployment(factories.endpoint("ep1"), "blue", instance_type="Standard_DS2_v2", instance_count=1)


def test_capacity_record_opens_and_closes_runs_and_is_idempotent(blue: object) -> None:
    assert services.capacity_record(deployment=blue, instance_count=2, at=T0) == 2
    assert services.capacity_record(deployment=blue, instance_count=2, at=T0 + hours(1)) == 0
    assert services.capacity_record(deployment=blue, instance_count=1, at=T0 + hours(2)) == 1
    runs = list(InstanceRun.objects.values_list("instance", "started_at", "stopped_at"))
    assert runs == [("blue-1", T0, None), ("blue-2", T0, T0 + hours(2))]
    assert services.capacity_record(deployment=blue, instance_count=0, at=T0 + hours(3)) == 1
    assert not InstanceRun.objects.filter(stopped_at__isnull=True).exists()


def test_costs_match_a_hand_computation_over_several_changes(blue: object) -> None:
    # blue: 1 instance at 22:00, 3 at 23:30, 2 at 01:15 (next day), all stopped at 02:00:00.5
    services.capacity_record(deployment=blue, instance_count=1, at=T0)
    services.capacity_record(deployment=blue, instance_count=3, at=T0 + hours(1.5))
    services.capacity_record(deployment=blue, instance_count=2, at=T0 + hours(3.25))
    stop = T0 + hours(4) + timedelta(milliseconds=500)
    services.capacity_record(deployment=blue, instance_count=0, at=stop)
    # green: 1 × DS3 from 23:00 to now (still running at 03:00)
    green = factories.deployment(blue.endpoint, "green", instance_type="Standard_DS3_v2", instance_count=1)
    services.capacity_record(deployment=green, instance_count=1, at=T0 + hours(1))
    now = T0 + hours(5)

    # By hand, in instance-seconds:
    #   blue-1: 22:00 → 02:00:00.5 = 14400.5 s (7200 s on day 1, 7200.5 s on day 2)
    #   blue-2: 23:30 → 02:00:00.5 =  9000.5 s (1800 s on day 1, 7200.5 s on day 2)
    #   blue-3: 23:30 → 01:15      =  6300 s   (1800 s on day 1, 4500 s on day 2)
    #   green-1: 23:00 → 03:00     = 14400 s   (3600 s on day 1, 10800 s on day 2)
    blue_day1 = Decimal(7200 + 1800 + 1800)
    blue_day2 = Decimal("7200.5") + Decimal("7200.5") + Decimal(4500)
    rows = selectors.cost_rows(start=T0 - hours(24), end=now + hours(24), now=now)
    assert [(r.day, r.deployment, r.instance_seconds) for r in rows] == [
        ("2026-11-10", "blue", blue_day1),
        ("2026-11-10", "green", Decimal(3600)),
        ("2026-11-11", "blue", blue_day2),
        ("2026-11-11", "green", Decimal(10800)),
    ]
    blue_cost = (blue_day1 + blue_day2) * DS2 / 3600
    green_cost = Decimal(14400) * DS3 / 3600
    assert blue_day1 + blue_day2 == Decimal("29701")  # 8.25 instance-hours and one second
    summary = selectors.costs_summary(start=T0 - hours(24), end=now, now=now)
    by_name = {d["deployment"]: d for d in summary["deployments"]}
    assert by_name["blue"]["cost"] == blue_day1 * DS2 / 3600 + blue_day2 * DS2 / 3600
    assert abs(by_name["blue"]["cost"] - blue_cost) < Decimal("1e-20")
    assert selectors.money(by_name["blue"]["cost"]) == "1.204541"  # 29701 s × 0.1460 / 3600
    assert by_name["green"]["cost"] == Decimal("1.172")  # 4 h × 0.2930
    assert by_name["blue"]["instance_hours"] == (blue_day1 + blue_day2) / 3600
    assert summary["cost"] == by_name["blue"]["cost"] + green_cost

    # A window that cuts runs counts only the part inside it: 01:00 → 01:30 on day 2.
    window = selectors.cost_rows(start=T0 + hours(3), end=T0 + hours(3.5), now=now)
    assert {(r.deployment, r.instance_seconds) for r in window} == {
        ("blue", Decimal(1800 + 1800 + 900)),
        ("green", Decimal(1800)),
    }


def test_editing_a_price_reprices_the_history(blue: object) -> None:
    services.capacity_record(deployment=blue, instance_count=2, at=T0)
    services.capacity_record(deployment=blue, instance_count=0, at=T0 + hours(10))
    services.instance_type_price_set(name="Standard_DS2_v2", price_per_hour="0.5")
    summary = selectors.costs_summary(start=T0, end=T0 + hours(24), now=T0 + hours(24))
    assert summary["cost"] == Decimal("10.0")  # 20 instance-hours × 0.5


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ("cheap", "price_per_hour: expected a number, got 'cheap'"),
        ("-1", "price_per_hour: expected a price from 0 to 999999.9999, got '-1'"),
        ("0.123456", "price_per_hour: at most 4 decimal places, got '0.123456'"),
    ],
)
def test_bad_prices_are_refused_naming_the_field(price: str, message: str) -> None:
    from apps.core.errors import ApplicationError

    with pytest.raises(ApplicationError) as caught:
        services.instance_type_price_set(name="Standard_DS2_v2", price_per_hour=price)
    assert caught.value.message == message
    assert InstancePrice.objects.get(instance_type="Standard_DS2_v2").price_per_hour == DS2


def test_cost_per_1000_requests_and_mirrored_share(blue: object) -> None:
    green = factories.deployment(blue.endpoint, "green", instance_type="Standard_DS2_v2", instance_count=1)
    services.capacity_record(deployment=blue, instance_count=1, at=T0)
    services.capacity_record(deployment=green, instance_count=1, at=T0)
    # blue answers 3000 live requests; green answers 1000 mirrored copies and 1000 live ones.
    load = [Request(ts=T0.timestamp() + i % 3000, deployment="blue", latency_ms=5.0) for i in range(3000)]
    load += [Request(ts=T0.timestamp() + i, deployment="green", latency_ms=5.0, mirrored=True) for i in range(1000)]
    load += [Request(ts=T0.timestamp() + i, deployment="green", latency_ms=5.0) for i in range(1000)]
    push(aggregate(load))
    monitoring.metrics_ingest()
    now = T0 + hours(2)

    summary = selectors.costs_summary(start=T0, end=now, now=now)

    per_deployment = 2 * DS2  # 2 hours each
    by_name = {d["deployment"]: d for d in summary["deployments"]}
    assert by_name["blue"]["cost_per_1000_requests"] == per_deployment * 1000 / 3000
    assert by_name["green"]["cost_per_1000_requests"] == per_deployment * 1000 / 2000
    assert by_name["green"]["mirrored_cost"] == per_deployment / 2
    (endpoint,) = summary["endpoints"]
    assert endpoint["cost_per_1000_requests"] == 2 * per_deployment * 1000 / 4000
    assert endpoint["mirrored_share"] == Decimal("0.25")


def test_month_to_date_and_projection(blue: object) -> None:
    # Two DS2 instances since the 1st of November at 00:00; now is the 10th at 00:00 (30-day month).
    Deployment.objects.filter(pk=blue.pk).update(instance_count=2)
    services.capacity_record(deployment=blue, instance_count=2, at=datetime(2026, 11, 1, tzinfo=UTC))
    now = datetime(2026, 11, 10, tzinfo=UTC)
    month = selectors.month_summary(now=now)
    assert month["month"] == "2026-11"
    assert month["month_to_date"] == 2 * 9 * 24 * DS2
    assert month["burn_rate_per_hour"] == 2 * DS2
    assert month["projected_month"] == 2 * 30 * 24 * DS2


def test_cost_book_rates_are_the_current_size_and_the_month_is_730_hours(blue: object) -> None:
    # blue: 1 × DS2 ran since the 1st; green: 3 × DS3, just created; red: failed (holds no instances).
    green = factories.deployment(blue.endpoint, "green", instance_type="Standard_DS3_v2", instance_count=3)
    red = factories.deployment(blue.endpoint, "red", instance_type="Standard_DS3_v2", instance_count=2)
    Deployment.objects.filter(pk=red.pk).update(state="Failed")
    services.capacity_record(deployment=blue, instance_count=1, at=datetime(2026, 11, 1, tzinfo=UTC))
    now = datetime(2026, 11, 10, 12, tzinfo=UTC)

    book = selectors.cost_book(now=now)

    blue_costs, green_costs = book.deployment("ep1", "blue"), book.deployment("ep1", green.name)
    assert (blue_costs.per_hour, blue_costs.per_day, blue_costs.per_month) == (DS2, 24 * DS2, 730 * DS2)
    assert green_costs.per_hour == 3 * DS3 and green_costs.month_to_date == 0
    assert book.deployment("ep1", "red").per_hour == 0
    assert blue_costs.month_to_date == Decimal(9 * 24 + 12) * DS2
    # 20.5 days (492 hours) left in November at the current size, on top of what accrued.
    assert blue_costs.projected_month == blue_costs.month_to_date + 492 * DS2
    endpoint = book.endpoint("ep1")
    assert endpoint.per_hour == DS2 + 3 * DS3 and book.total.per_hour == endpoint.per_hour
    assert endpoint.projected_month == blue_costs.projected_month + green_costs.projected_month
    # Shown once, rounded to the cent, halves up: 730 × 0.1460 = 106.58 a month, not 3.50 a day × 730 / 24.
    assert selectors.cents(blue_costs.per_month) == Decimal("106.58")
    assert selectors.cents(Decimal("89.425")) == Decimal("89.43")


def test_idle_deployments_are_flagged_while_costing_money(blue: object, settings: object) -> None:
    green = factories.deployment(blue.endpoint, "green", instance_type="Standard_DS2_v2", instance_count=1)
    services.capacity_record(deployment=blue, instance_count=1, at=T0)
    services.capacity_record(deployment=green, instance_count=1, at=T0)
    # blue served a request at T0 + 50 min; green never did.
    push(aggregate([Request(ts=(T0 + timedelta(minutes=50)).timestamp(), deployment="blue", latency_ms=5.0)]))
    monitoring.metrics_ingest()

    at_65 = selectors.idle_deployments(now=T0 + timedelta(minutes=65), minutes=60)
    assert [(row["deployment"], row["idle_since"]) for row in at_65] == [("green", T0)]
    at_120 = selectors.idle_deployments(now=T0 + timedelta(minutes=120), minutes=60)
    assert [row["deployment"] for row in at_120] == ["blue", "green"]
    assert at_120[0]["last_request_at"] == T0 + timedelta(minutes=50, seconds=10)
    # Stopped instances cost nothing, so a stopped deployment is not idle.
    services.capacity_record(deployment=green, instance_count=0, at=T0 + timedelta(minutes=70))
    assert [row["deployment"] for row in selectors.idle_deployments(now=T0 + timedelta(minutes=120))] == ["blue"]


def test_csv_export_has_one_line_per_day_and_deployment(blue: object) -> None:
    services.capacity_record(deployment=blue, instance_count=1, at=T0)
    services.capacity_record(deployment=blue, instance_count=0, at=T0 + hours(3))
    text = selectors.costs_csv(rows=selectors.cost_rows(start=T0, end=T0 + hours(5), now=T0 + hours(5)))
    lines = list(csv.reader(io.StringIO(text)))
    assert lines == [
        ["day", "endpoint", "deployment", "instance_type", "instance_hours", "price_per_hour", "cost", "currency"],
        ["2026-11-10", "ep1", "blue", "Standard_DS2_v2", "2.000000", "0.1460", "0.292000", "USD"],
        ["2026-11-11", "ep1", "blue", "Standard_DS2_v2", "1.000000", "0.1460", "0.146000", "USD"],
    ]


def test_quota_shows_used_reserved_and_free(blue: object, settings: object) -> None:
    # blue: 1 × DS2 (2 cores) holds ceil(1.2) × 2 = 4 cores: 2 used, 2 reserved.
    factories.deployment(blue.endpoint, "green", instance_type="Standard_DS3_v2", instance_count=5)
    # green: 5 × 4 cores = 20 used, ceil(6.0) × 4 = 24 held: 4 reserved.
    assert catalog.quota_view() == {"limit": 100, "used": 22, "reserved": 6, "free": 72}


def test_endpoint_costs_for_the_studio_pages(blue: object) -> None:
    services.capacity_record(deployment=blue, instance_count=1, at=T0)
    now = T0 + hours(26)  # 22:00 on the 10th to midnight on the 12th

    costs = selectors.endpoint_costs(endpoint="ep1", now=now)

    assert costs["per_deployment_per_day"] == {
        "blue": [("2026-11-10", 2 * DS2), ("2026-11-11", 24 * DS2)],
    }
    assert costs["month_to_date"] == 26 * DS2
    assert costs["cost_per_hour"] == DS2
    assert [row["deployment"] for row in costs["idle"]] == ["blue"]
    figure = charts.cost_figure(costs["per_deployment_per_day"], currency="USD")
    assert [(trace["name"], trace["x"], trace["y"]) for trace in figure["data"]] == [
        ("blue", ["2026-11-10", "2026-11-11"], [0.292, 3.504])
    ]
    assert figure["layout"]["barmode"] == "stack"


def test_runs_of_a_deployment_deleted_without_a_final_record_are_closed(blue: object) -> None:
    services.capacity_record(deployment=blue, instance_count=2, at=T0)
    blue.delete()
    assert services.capacity_close_orphans(at=T0 + hours(1)) == 2
    rows = selectors.cost_rows(start=T0, end=T0 + hours(5), now=T0 + hours(5))
    assert [(r.deployment, r.instance_seconds) for r in rows] == [("blue", Decimal(7200))]


def test_idle_deployments_get_one_warning_on_their_timeline_per_idle_spell(blue: object) -> None:
    import time_machine

    services.capacity_record(deployment=blue, instance_count=2, at=T0)
    with time_machine.travel(T0 + timedelta(minutes=61), tick=False):
        assert services.idle_flag() == 1
        assert services.idle_flag() == 0  # once
    (event,) = blue.events.filter(reason="Idle")
    assert event.type == "Warning"
    assert event.message == "no request since 2026-11-10 22:00 UTC while 2 instance(s) cost 0.292000 USD an hour"
    # A request ends the spell; the next spell gets its own warning.
    push(aggregate([Request(ts=(T0 + timedelta(minutes=70)).timestamp(), deployment="blue", latency_ms=5.0)]))
    monitoring.metrics_ingest()
    with time_machine.travel(T0 + timedelta(minutes=100), tick=False):
        assert services.idle_flag() == 0
    with time_machine.travel(T0 + timedelta(minutes=140), tick=False):
        assert services.idle_flag() == 1


def test_requests_refused_before_routing_cost_nothing(blue: object) -> None:
    services.capacity_record(deployment=blue, instance_count=1, at=T0)
    push(aggregate([Request(ts=T0.timestamp() + i, deployment="", latency_ms=1.0, status=401) for i in range(5)]))
    push(aggregate([Request(ts=T0.timestamp() + i, deployment="blue", latency_ms=1.0) for i in range(10)]))
    monitoring.metrics_ingest()
    summary = selectors.costs_summary(start=T0, end=T0 + hours(1), now=T0 + hours(1))
    assert [d["deployment"] for d in summary["deployments"]] == ["blue"]
    assert summary["endpoints"][0]["cost_per_1000_requests"] == DS2 * 1000 / 10

"""One deployment, every place that shows what it costs: the wizard's estimate, the endpoints list, the
Details card, the Traffic tab, the Costs tab, the global Costs page and the API agree to the cent.

Figures are read as a user reads them: the text of the rendered page (or the JSON the CLI prints),
rounded to the cent where the API gives more decimals.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
import time_machine
from django.test import Client

from apps.costs import services
from tests import factories

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 10, 15, 47, 12, 250000, tzinfo=UTC)
STARTED = NOW - timedelta(hours=80, minutes=30)  # the instances have run 80.5 hours this month


@pytest.fixture
def browser(db: None) -> Client:
    client = Client()
    client.force_login(factories.user("alice"))
    return client


class _Text(HTMLParser):
    """The visible text of the element with one id (its descendants' text, whitespace collapsed)."""

    VOID = {"br", "img", "input", "meta", "link", "hr", "source", "wbr", "col", "area", "base", "embed"}

    def __init__(self, element_id: str) -> None:
        super().__init__()
        self.element_id = element_id
        self.depth = 0
        self.found = False
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.depth += tag not in self.VOID
        elif dict(attrs).get("id") == self.element_id:
            self.found, self.depth = True, 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag not in self.VOID:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)


def text_of(html: str, element_id: str) -> str:
    parser = _Text(element_id)
    parser.feed(html)
    assert parser.found, f"no element with id {element_id!r} in the page"
    return " ".join(" ".join(parser.parts).split())


def amount(text: str, pattern: str) -> Decimal:
    """The money amount in `text` that `pattern` (with one `{money}`) finds, e.g. 'Cost per day {money} USD'."""
    regex = re.escape(pattern).replace(re.escape("{money}"), r"(\d+\.\d+)")
    found = re.search(regex, text)
    assert found, f"{pattern!r} not in {text!r}"
    return Decimal(found.group(1))


def amounts(text: str) -> list[Decimal]:
    """Every amount in `text` followed by the currency, in reading order (a table row's cells)."""
    return [Decimal(value) for value in re.findall(r"(\d+\.\d+) USD", text)]


def to_cent(api_value: str) -> Decimal:
    """An API figure (six decimals) as a user reads it to the cent."""
    return Decimal(api_value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@pytest.mark.parametrize(
    ("price", "count", "per_day", "per_month"),
    [
        # The catalog's DS2: 0.146 × 730 h = 106.58 a month (not 3.50 a day × 730 / 24 = 106.46).
        (None, 1, "3.50", "106.58"),
        # 0.1225 × 730 = 89.425: one rounding, halves up, gives 89.43 everywhere.
        ("0.1225", 1, "2.94", "89.43"),
        (None, 3, "10.51", "319.74"),
    ],
)
def test_every_page_and_the_api_show_the_same_cost_to_the_cent(
    browser: Client, api: Any, price: str | None, count: int, per_day: str, per_month: str
) -> None:
    if price is not None:
        services.instance_type_price_set(name="Standard_DS2_v2", price_per_hour=price)
    endpoint = factories.endpoint("ep1")
    blue = factories.deployment(endpoint, "blue", instance_type="Standard_DS2_v2", instance_count=count)
    services.capacity_record(deployment=blue, instance_count=count, at=STARTED)
    rate = Decimal(price or "0.1460") * count
    month_to_date = (rate * Decimal("80.5")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    with time_machine.travel(NOW, tick=False):
        wizard = browser.get(f"/endpoints/new/estimate/?instance_type=Standard_DS2_v2&instance_count={count}")
        listing = browser.get("/endpoints/").content.decode()
        details = browser.get("/endpoints/ep1/").content.decode()
        traffic = browser.get("/endpoints/ep1/traffic/").content.decode()
        costs_tab = browser.get("/endpoints/ep1/costs/").content.decode()
        costs_page = browser.get("/costs/").content.decode()
        endpoint_json = api.get("/api/v1/online-endpoints/ep1").json()["costs"]
        deployment_json = api.get("/api/v1/online-endpoints/ep1/deployments/blue").json()["costs"]
        costs_json = api.get("/api/v1/costs", {"endpoint": "ep1"}).json()["month"]

    estimate = text_of(wizard.content.decode(), "deployment-estimate")
    # Costs tab, one row per deployment: price per hour, per day, per month (730 h).
    price_shown, rates_per_day, rates_per_month = amounts(text_of(costs_tab, f"deployment-{blue.uid}-rate"))
    accrued = text_of(costs_tab, "accrued-costs")
    # Global Costs page, one row per endpoint: per day, month to date, projected month, burn rate.
    page_row = amounts(text_of(costs_page, f"endpoint-{endpoint.uid}-costs"))
    page_per_day, page_month_to_date, page_projected, page_burn_rate = page_row
    shown_per_day = {
        "wizard": amount(estimate, "= {money} USD a day"),
        "endpoints list": amount(text_of(listing, f"endpoint-{endpoint.uid}-row"), "{money} USD"),
        "details card": amount(text_of(details, f"deployment-{blue.uid}-card"), "Cost per day {money} USD"),
        "traffic tab": amount(text_of(traffic, "traffic-cost"), "Instances cost {money} USD a day"),
        "costs tab": rates_per_day,
        "costs page": page_per_day,
        "API endpoint": to_cent(endpoint_json["cost_per_day"]),
        "API deployment": to_cent(deployment_json["cost_per_day"]),
    }
    assert shown_per_day == dict.fromkeys(shown_per_day, Decimal(per_day))

    shown_per_month = {
        "wizard": amount(estimate, "about {money} USD a month"),
        "costs tab": rates_per_month,
        "API endpoint": to_cent(endpoint_json["cost_per_month"]),
        "API deployment": to_cent(deployment_json["cost_per_month"]),
    }
    assert shown_per_month == dict.fromkeys(shown_per_month, Decimal(per_month))

    shown_month_to_date = {
        "costs tab": amount(accrued, "Month to date {money} USD"),
        "costs page": page_month_to_date,
        "API endpoint": to_cent(endpoint_json["month_to_date"]),
        "API deployment": to_cent(deployment_json["month_to_date"]),
        "API costs": to_cent(costs_json["month_to_date"]),
    }
    assert shown_month_to_date == dict.fromkeys(shown_month_to_date, month_to_date)

    # The rest of November (20 days, 8 h 12 min 47.75 s) at the current size, on top of what accrued.
    hours_left = (datetime(2026, 12, 1, tzinfo=UTC) - NOW) / timedelta(hours=1)
    projected = (rate * Decimal("80.5") + rate * Decimal(str(hours_left))).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )
    shown_projected = {
        "costs tab": amount(accrued, "Projected month {money} USD"),
        "costs page": page_projected,
        "API endpoint": to_cent(endpoint_json["projected_month"]),
        "API deployment": to_cent(deployment_json["projected_month"]),
        "API costs": to_cent(costs_json["projected_month"]),
    }
    assert shown_projected == dict.fromkeys(shown_projected, projected)
    assert price_shown == Decimal(price or "0.1460")
    assert amount(accrued, "Burn rate {money} USD an hour") == rate == page_burn_rate
    assert amount(text_of(costs_page, "costs-summary"), "Burn rate {money} USD an hour") == rate
    assert Decimal(endpoint_json["cost_per_hour"]) == rate

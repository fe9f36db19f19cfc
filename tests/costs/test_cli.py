"""`studio costs` and the cost figures of `studio online-endpoint show`, through the real CLI."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from apps.costs import services
from tests import factories
from tests.cli.conftest import assert_error, cli_env, run  # noqa: F401 (cli_env is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 10, 0, 0, tzinfo=UTC)
WINDOW = ("--start", "2026-11-10T00:00:00Z", "--end", "2026-11-11T00:00:00Z")


@pytest.fixture
def history(request: pytest.FixtureRequest) -> dict[str, str]:
    env: dict[str, str] = request.getfixturevalue("cli_env")  # a live studio and a signed-in CLI
    blue = factories.deployment(factories.endpoint("ep1"), "blue", instance_type="Standard_DS2_v2", instance_count=2)
    services.capacity_record(deployment=blue, instance_count=2, at=T0)
    services.capacity_record(deployment=blue, instance_count=0, at=T0 + timedelta(hours=12))
    return env


def test_costs_show_and_export(history: dict[str, str], tmp_path: Path) -> None:
    shown = run(("costs", "show", "-e", "ep1", *WINDOW, "--query", "days"), history)
    assert shown.code == 0, shown.stderr
    assert shown.json() == [{"day": "2026-11-10", "cost": "3.504000"}]  # 24 instance-hours × 0.1460

    exported = run(("costs", "export", *WINDOW), history)
    assert exported.code == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["deployment"], r["instance_hours"], r["cost"], r["currency"]) for r in rows] == [
        ("blue", "24.000000", "3.504000", "USD")
    ]


def test_costs_quota_and_show_endpoint_costs(history: dict[str, str]) -> None:
    quota = run(("costs", "quota"), history)
    assert quota.json() == {"limit": 100, "used": 4, "reserved": 2, "free": 94}
    shown = run(("online-endpoint", "show", "-n", "ep1", "--query", "keys(costs)"), history)
    assert sorted(shown.json()) == [
        "cost_per_day",
        "cost_per_hour",
        "cost_per_month",
        "currency",
        "last_24h",
        "mirrored_share_24h",
        "month_to_date",
        "projected_month",
    ]


def test_costs_bad_input_is_one_clear_line(history: dict[str, str]) -> None:
    assert_error(run(("costs", "show", "--start", "last week"), history), "start: expected an ISO 8601 time")
    assert_error(run(("costs", "export", "-e", "nope"), history), "online endpoint 'nope' does not exist")


def test_costs_without_login_is_refused(history: dict[str, str], tmp_path: Any) -> None:
    result = run(("costs", "show"), {**history, "STUDIO_TOKEN": "wrong"})
    assert result.code == 1
    assert "refused the API token" in result.stderr

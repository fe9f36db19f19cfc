"""`studio monitor autoscale`, shaped like `az monitor autoscale`, through the real CLI against a live studio."""

from __future__ import annotations

import pytest

from apps.costs.models import AutoscaleSetting
from tests import factories
from tests.cli.conftest import assert_error, cli_env, run  # noqa: F401 (cli_env is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

TARGET = ("-e", "ep1", "-d", "blue")


@pytest.fixture
def env(request: pytest.FixtureRequest) -> dict[str, str]:
    env: dict[str, str] = request.getfixturevalue("cli_env")
    factories.deployment(factories.endpoint("ep1"), "blue")
    return env


def test_create_show_update_delete(env: dict[str, str]) -> None:
    created = run(("monitor", "autoscale", "create", *TARGET, "--min-count", "1", "--max-count", "4"), env)
    assert created.code == 0, created.stderr
    assert created.json()["capacity"] == {"minimum": 1, "maximum": 4, "default": 1}
    assert_error(
        run(("monitor", "autoscale", "create", *TARGET, "--min-count", "1", "--max-count", "2"), env),
        "deployment 'blue' of online endpoint 'ep1' already has an autoscale setting; use studio monitor autoscale",
    )
    updated = run(("monitor", "autoscale", "update", *TARGET, "--max-count", "6", "--count", "2"), env)
    assert updated.code == 0, updated.stderr
    shown = run(("monitor", "autoscale", "show", *TARGET, "--query", "[enabled, capacity]"), env)
    assert shown.json() == [True, {"minimum": 1, "maximum": 6, "default": 2}]
    off = run(("monitor", "autoscale", "update", *TARGET, "--enabled", "false"), env)
    assert off.json()["enabled"] is False and AutoscaleSetting.objects.get().enabled is False
    # The server's rule, named by its field: the maximum below the minimum.
    assert_error(
        run(("monitor", "autoscale", "update", *TARGET, "--min-count", "5", "--max-count", "3"), env),
        "capacity.maximum: must be at least the minimum 5, got 3",
    )
    deleted = run(("monitor", "autoscale", "delete", *TARGET), env)
    assert deleted.code == 0 and deleted.stdout == ""
    assert not AutoscaleSetting.objects.exists()
    assert_error(
        run(("monitor", "autoscale", "show", *TARGET), env),
        "deployment 'blue' of online endpoint 'ep1' has no autoscale setting; create one first",
    )


def test_rule_create_list_delete(env: dict[str, str]) -> None:
    run(("monitor", "autoscale", "create", *TARGET, "--min-count", "1", "--max-count", "4"), env)
    out = run(
        ("monitor", "autoscale", "rule", "create", *TARGET, "--condition", "CpuUtilizationPercentage > 70 avg 10m")
        + ("--scale", "out", "2", "--cooldown", "3"),
        env,
    )
    assert out.code == 0, out.stderr
    assert out.json() == {
        "index": 0,
        "metric": "CpuUtilizationPercentage",
        "operator": "GreaterThan",
        "threshold": 70,
        "window_minutes": 10,
        "direction": "Increase",
        "change": 2,
        "cooldown_minutes": 3,
    }
    scale_in = ("--condition", "RequestsPerInstancePerMinute <= 12.5", "--scale", "in", "1")
    assert run(("monitor", "autoscale", "rule", "create", *TARGET, *scale_in), env).code == 0
    listed = run(("monitor", "autoscale", "rule", "list", *TARGET, "--query", "[].[index, operator, direction]"), env)
    assert listed.json() == [[0, "GreaterThan", "Increase"], [1, "LessThanOrEqual", "Decrease"]]
    assert run(("monitor", "autoscale", "rule", "delete", *TARGET, "--index", "0"), env).code == 0
    assert [r["metric"] for r in AutoscaleSetting.objects.get().rules] == ["RequestsPerInstancePerMinute"]
    assert_error(run(("monitor", "autoscale", "rule", "delete", *TARGET, "--index", "4"), env), "--index: no rule 4")
    assert_error(
        run(
            ("monitor", "autoscale", "rule", "create", *TARGET, "--condition", "Cpu is high", "--scale", "out", "1"),
            env,
        ),
        '--condition: expected "<metric> <operator> <threshold> [avg <minutes>m]"',
    )
    assert_error(
        run(
            (
                "monitor",
                "autoscale",
                "rule",
                "create",
                *TARGET,
                "--condition",
                "Percentage_CPU > 70",
                "--scale",
                "out",
                "1",
            ),
            env,
        ),
        "rules[1].metric: expected one of CpuUtilizationPercentage, RequestsPerInstancePerMinute, RequestLatency_P95",
    )


def test_profile_create_list_delete(env: dict[str, str]) -> None:
    run(("monitor", "autoscale", "create", *TARGET, "--min-count", "1", "--max-count", "2"), env)
    created = run(
        ("monitor", "autoscale", "profile", "create", *TARGET, "-n", "business-hours", "--min-count", "2")
        + ("--max-count", "5", "--timezone", "Europe/Paris", "--start", "08:00", "--end", "18:00")
        + ("--recurrence", "week", "mon", "fri"),
        env,
    )
    assert created.code == 0, created.stderr
    assert created.json() == {
        "name": "business-hours",
        "timezone": "Europe/Paris",
        "days": ["Monday", "Friday"],
        "start": "08:00",
        "end": "18:00",
        "capacity": {"minimum": 2, "maximum": 5, "default": 2},
    }
    assert run(("monitor", "autoscale", "profile", "list", *TARGET, "--query", "[].name"), env).json() == [
        "business-hours"
    ]
    assert_error(
        run(
            (
                "monitor",
                "autoscale",
                "profile",
                "create",
                *TARGET,
                "-n",
                "night",
                "--min-count",
                "1",
                "--max-count",
                "1",
            )
            + ("--timezone", "Mars/Olympus", "--start", "22:00", "--end", "23:00", "--recurrence", "week", "sun"),
            env,
        ),
        "profiles[1].timezone: unknown time zone 'Mars/Olympus'",
    )
    assert_error(
        run(("monitor", "autoscale", "profile", "delete", *TARGET, "-n", "nope"), env),
        "--name: no profile 'nope' (there are: business-hours)",
    )
    assert run(("monitor", "autoscale", "profile", "delete", *TARGET, "-n", "business-hours"), env).code == 0
    assert AutoscaleSetting.objects.get().profiles == []

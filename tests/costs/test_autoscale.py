"""Autoscale decisions under generated load and under schedules, with the clock frozen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import time_machine

from apps.core.errors import ApplicationError
from apps.costs import autoscale, services
from apps.costs.models import AutoscaleSetting
from apps.endpoints.models import Deployment, ProvisioningState
from apps.monitoring import services as monitoring
from tests import factories
from tests.monitoring.gateway import Request, aggregate, push

pytestmark = pytest.mark.django_db

# A Monday, 09:00 UTC (10:00 in Paris, winter time).
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

SCALE_OUT = {
    "metric": "RequestsPerInstancePerMinute",
    "operator": "GreaterThan",
    "threshold": 100,
    "window_minutes": 5,
    "direction": "Increase",
    "change": 1,
    "cooldown_minutes": 5,
}
SCALE_IN = {**SCALE_OUT, "operator": "LessThan", "threshold": 20, "direction": "Decrease", "change": 1}


def running(**overrides: Any) -> Deployment:
    deployment = factories.deployment(
        factories.endpoint("ep1"), "blue", instance_type="Standard_DS2_v2", instance_count=1, **overrides
    )
    Deployment.objects.filter(pk=deployment.pk).update(state=ProvisioningState.SUCCEEDED)
    deployment.refresh_from_db()
    return deployment


def load(rng: np.random.Generator, *, start: datetime, minutes: int, per_minute: int) -> None:
    """Generated traffic: per_minute requests a minute at random moments, pushed as the gateway does."""
    requests = []
    for minute in range(minutes):
        moments = rng.uniform(0, 60, size=per_minute)
        latencies = rng.lognormal(3.0, 0.5, size=per_minute)
        for moment, latency in zip(moments, latencies, strict=True):
            ts = start.timestamp() + minute * 60 + float(moment)
            requests.append(Request(ts=ts, deployment="blue", latency_ms=float(latency)))
    push(aggregate(requests))
    monitoring.metrics_ingest()


def scale_events(deployment: Deployment) -> list[str]:
    return list(deployment.events.filter(reason="ScaleDecision").values_list("message", flat=True))


def count(deployment: Deployment) -> int:
    return Deployment.objects.get(pk=deployment.pk).instance_count


def test_rules_scale_out_under_load_respect_cooldown_and_scale_in_when_quiet() -> None:
    rng = np.random.default_rng(5)
    blue = running()
    setting = services.autoscale_set(
        deployment=blue, spec={"capacity": {"minimum": 1, "maximum": 4, "default": 1}, "rules": [SCALE_OUT, SCALE_IN]}
    )
    with time_machine.travel(MONDAY, tick=False):
        autoscale.evaluate(setting=setting)  # the first evaluation settles on the default profile
    assert count(blue) == 1

    # 10 minutes of 300 requests a minute: 300 per instance > 100.
    load(rng, start=MONDAY, minutes=10, per_minute=300)
    with time_machine.travel(MONDAY + timedelta(minutes=5), tick=False):
        autoscale.evaluate(setting=AutoscaleSetting.objects.get())
    assert count(blue) == 2
    assert scale_events(blue)[-1] == (
        "autoscale: RequestsPerInstancePerMinute 300 GreaterThan 100 over 5 min: scale out by 1 (1 → 2 instances)"
    )
    # Two minutes later the load per instance (150) still asks for more, but the cool-down holds.
    with time_machine.travel(MONDAY + timedelta(minutes=7), tick=False):
        autoscale.evaluate(setting=AutoscaleSetting.objects.get())
    assert count(blue) == 2
    with time_machine.travel(MONDAY + timedelta(minutes=10), tick=False):
        autoscale.evaluate(setting=AutoscaleSetting.objects.get())
    assert count(blue) == 3
    assert scale_events(blue)[-1].startswith("autoscale: RequestsPerInstancePerMinute 150 GreaterThan 100")

    # Traffic stops: after the window and the cool-down, one instance at a time goes, down to the minimum.
    for minutes, expected in ((16, 2), (18, 2), (21, 1), (27, 1)):
        with time_machine.travel(MONDAY + timedelta(minutes=minutes), tick=False):
            autoscale.evaluate(setting=AutoscaleSetting.objects.get())
        assert count(blue) == expected, minutes
    assert scale_events(blue)[-1] == (
        "autoscale: RequestsPerInstancePerMinute 0 LessThan 20 over 5 min: scale in by 1 (2 → 1 instances)"
    )


def test_maximum_holds_under_heavy_load() -> None:
    rng = np.random.default_rng(9)
    blue = running()
    setting = services.autoscale_set(
        deployment=blue, spec={"capacity": {"minimum": 1, "maximum": 2}, "rules": [{**SCALE_OUT, "change": 5}]}
    )
    with time_machine.travel(MONDAY, tick=False):
        autoscale.evaluate(setting=setting)
    load(rng, start=MONDAY, minutes=5, per_minute=2000)
    with time_machine.travel(MONDAY + timedelta(minutes=5), tick=False):
        autoscale.evaluate(setting=AutoscaleSetting.objects.get())
    assert count(blue) == 2
    assert scale_events(blue)[-1].endswith(
        "scale out by 5; kept at the maximum 2 of the default profile (1 → 2 instances)"
    )


def test_latency_rule_reads_p95_from_the_store() -> None:
    rng = np.random.default_rng(2)
    blue = running()
    rule = {**SCALE_OUT, "metric": "RequestLatency_P95", "threshold": 40}
    setting = services.autoscale_set(deployment=blue, spec={"capacity": {"minimum": 1, "maximum": 3}, "rules": [rule]})
    with time_machine.travel(MONDAY, tick=False):
        autoscale.evaluate(setting=setting)
    load(rng, start=MONDAY, minutes=5, per_minute=100)  # lognormal(3, 0.5): p95 ≈ 46 ms
    with time_machine.travel(MONDAY + timedelta(minutes=5), tick=False):
        autoscale.evaluate(setting=AutoscaleSetting.objects.get())
    assert count(blue) == 2
    assert "RequestLatency_P95" in scale_events(blue)[-1]


BUSINESS_HOURS = {
    "name": "business-hours",
    "timezone": "Europe/Paris",
    "days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
    "start": "08:00",
    "end": "18:00",
    "capacity": {"minimum": 3, "maximum": 6, "default": 4},
}


def test_schedule_profiles_follow_the_clock_in_their_time_zone() -> None:
    blue = running()
    services.autoscale_set(
        deployment=blue,
        spec={"capacity": {"minimum": 1, "maximum": 2, "default": 1}, "profiles": [BUSINESS_HOURS]},
    )
    # Paris is UTC+1 in November: 08:00 in Paris is 07:00 UTC.
    timeline = [
        (datetime(2026, 11, 23, 6, 59, tzinfo=UTC), 1, "default"),  # Monday 07:59 Paris
        (datetime(2026, 11, 23, 7, 0, tzinfo=UTC), 4, "business-hours"),  # Monday 08:00 Paris
        (datetime(2026, 11, 23, 16, 59, tzinfo=UTC), 4, "business-hours"),
        (datetime(2026, 11, 23, 17, 0, tzinfo=UTC), 1, "default"),  # 18:00 Paris
        (datetime(2026, 11, 28, 9, 0, tzinfo=UTC), 1, "default"),  # Saturday
        (datetime(2026, 11, 30, 7, 30, tzinfo=UTC), 4, "business-hours"),  # next Monday
    ]
    for moment, expected, profile in timeline:
        with time_machine.travel(moment, tick=False):
            autoscale.evaluate(setting=AutoscaleSetting.objects.get())
        assert (count(blue), AutoscaleSetting.objects.get().active_profile) == (expected, profile), moment
    assert scale_events(blue)[0] == (
        "autoscale: profile 'business-hours' applies (min 3, max 6, default 4) (1 → 4 instances)"
    )


def test_schedule_in_summer_time_uses_the_zone_offset_of_that_day() -> None:
    profile = {**BUSINESS_HOURS, "days": ["Monday"]}
    # 22 June 2026 is a Monday; Paris is UTC+2, so 08:00 there is 06:00 UTC.
    assert autoscale.active_profile([profile], datetime(2026, 6, 22, 5, 59, tzinfo=UTC)) is None
    assert autoscale.active_profile([profile], datetime(2026, 6, 22, 6, 0, tzinfo=UTC)) == profile


def test_scale_out_never_goes_past_the_core_quota(settings: Any) -> None:
    rng = np.random.default_rng(4)
    blue = running()
    # DS2 has 2 cores; a 10-core quota holds ceil(1.2 × n) × 2 <= 10: at most 4 instances.
    settings.STUDIO_CORE_QUOTA = 10
    setting = services.autoscale_set(
        deployment=blue, spec={"capacity": {"minimum": 1, "maximum": 8}, "rules": [{**SCALE_OUT, "change": 6}]}
    )
    with time_machine.travel(MONDAY, tick=False):
        autoscale.evaluate(setting=setting)
    load(rng, start=MONDAY, minutes=5, per_minute=600)
    with time_machine.travel(MONDAY + timedelta(minutes=5), tick=False):
        autoscale.evaluate(setting=AutoscaleSetting.objects.get())
    assert count(blue) == 4
    blocked = blue.events.get(reason="ScaleBlocked")
    assert blocked.type == "Warning"
    assert blocked.message.endswith("wanted 7 instances but the core quota allows 4: OutOfQuota")


def test_decide_is_pure_under_a_generated_load_sequence() -> None:
    setting = autoscale.validate_setting({"capacity": {"minimum": 1, "maximum": 5}, "rules": [SCALE_OUT, SCALE_IN]})
    current, last, profile = 1, None, "default"
    per_minute = [50, 150, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 10, 10, 10, 10, 10, 10, 10, 10, 10]
    history = []
    for minute, rate in enumerate(per_minute):
        now = MONDAY + timedelta(minutes=5 * minute)
        decision = autoscale.decide(
            current=current,
            setting=setting,
            values=[rate / current, rate / current],
            now=now,
            last_action_at=last,
            previous_profile=profile,
        )
        if decision.target != current:
            last = now
        current = decision.target
        history.append(current)
    assert history == [1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 2, 1, 1, 1, 1, 1, 1, 1]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "capacity: required (minimum, maximum, default)"),
        ({"capacity": {"minimum": 3, "maximum": 2}}, "capacity.maximum: must be at least the minimum 3, got 2"),
        ({"capacity": {"minimum": 0, "maximum": 2}}, "capacity.minimum: expected a whole number from 1 to 50, got 0"),
        (
            {"capacity": {"minimum": 1, "maximum": 2}, "rules": [{**SCALE_OUT, "metric": "Cpu"}]},
            "rules[0].metric: expected one of CpuUtilizationPercentage, RequestsPerInstancePerMinute, "
            "RequestLatency_P95, got 'Cpu'",
        ),
        (
            {"capacity": {"minimum": 1, "maximum": 2}, "rules": [{**SCALE_OUT, "threshold": "high"}]},
            "rules[0].threshold: expected a number of 0 or more, got 'high'",
        ),
        (
            {"capacity": {"minimum": 1, "maximum": 2}, "profiles": [{**BUSINESS_HOURS, "timezone": "Mars/Base"}]},
            "profiles[0].timezone: unknown time zone 'Mars/Base' (e.g. Europe/Paris, UTC)",
        ),
        (
            {"capacity": {"minimum": 1, "maximum": 2}, "profiles": [{**BUSINESS_HOURS, "start": "8am"}]},
            "profiles[0].start: expected a time HH:MM (00:00 to 24:00), got '8am'",
        ),
        ({"capacity": {"minimum": 1, "maximum": 2}, "cooldown": 5}, "cooldown: unknown key; expected one of:"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        autoscale.validate_setting(spec)
    assert caught.value.message.startswith(message)

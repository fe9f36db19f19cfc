"""Autoscale as Azure Monitor does it: metric rules and schedule profiles, evaluated by Celery beat.

A setting (the body of PUT .../deployments/<name>/autoscale):

    {
      "enabled": true,
      "capacity": {"minimum": 1, "maximum": 5, "default": 1},
      "rules": [
        {"metric": "RequestsPerInstancePerMinute", "operator": "GreaterThan", "threshold": 600,
         "window_minutes": 5, "direction": "Increase", "change": 1, "cooldown_minutes": 5}
      ],
      "profiles": [
        {"name": "business-hours", "timezone": "Europe/Paris", "days": ["Monday", "Friday"],
         "start": "08:00", "end": "18:00", "capacity": {"minimum": 3, "maximum": 10, "default": 3}}
      ]
    }

Metrics: CpuUtilizationPercentage (mean over instances), RequestsPerInstancePerMinute (live and
mirrored requests ÷ instances), RequestLatency_P95 (ms). As in Azure Monitor: the first profile whose
recurrence covers now applies, else the default capacity; switching profile moves to its default;
scale out when any Increase rule fires, scale in only when every Decrease rule fires; no rule acts
within its cool-down of the last action; the result stays within the profile's minimum and
maximum, and never takes more cores than the quota has free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.costs.models import AutoscaleSetting
from apps.endpoints.catalog import cores_needed, instance_type_find, quota_used
from apps.endpoints.events import event_record
from apps.endpoints.models import Deployment, DeploymentEvent, ProvisioningState
from apps.endpoints.services import deployment_scale
from apps.monitoring import selectors as metrics

METRICS = ("CpuUtilizationPercentage", "RequestsPerInstancePerMinute", "RequestLatency_P95")
OPERATORS = {
    "GreaterThan": lambda value, threshold: value > threshold,
    "GreaterThanOrEqual": lambda value, threshold: value >= threshold,
    "LessThan": lambda value, threshold: value < threshold,
    "LessThanOrEqual": lambda value, threshold: value <= threshold,
}
DIRECTIONS = ("Increase", "Decrease")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_INSTANCES = 50
DEFAULT_PROFILE = "default"
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
SETTING_KEYS = ("enabled", "capacity", "rules", "profiles")
RULE_KEYS = ("metric", "operator", "threshold", "window_minutes", "direction", "change", "cooldown_minutes")
PROFILE_KEYS = ("name", "timezone", "days", "start", "end", "capacity")


def _fail(field: str, message: str) -> ApplicationError:
    return ApplicationError(f"{field}: {message}", field=field)


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(field, f"expected a whole number from {low} to {high}, got {value!r}")
    return value


def _unknown(spec: dict[str, Any], known: tuple[str, ...], prefix: str) -> None:
    for key in spec:
        if key not in known:
            raise _fail(f"{prefix}{key}", f"unknown key; expected one of: {', '.join(known)}")


def _capacity(spec: Any, field: str) -> dict[str, int]:
    if not isinstance(spec, dict):
        raise _fail(field, f"expected an object with minimum, maximum and default, got {spec!r}")
    _unknown(spec, ("minimum", "maximum", "default"), f"{field}.")
    for key in ("minimum", "maximum"):
        if key not in spec:
            raise _fail(f"{field}.{key}", "required")
    minimum = _int(spec["minimum"], f"{field}.minimum", 1, MAX_INSTANCES)
    maximum = _int(spec["maximum"], f"{field}.maximum", 1, MAX_INSTANCES)
    if maximum < minimum:
        raise _fail(f"{field}.maximum", f"must be at least the minimum {minimum}, got {maximum}")
    default = _int(spec.get("default", minimum), f"{field}.default", minimum, maximum)
    return {"minimum": minimum, "maximum": maximum, "default": default}


def _rule(spec: Any, field: str) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise _fail(field, f"expected an object, got {spec!r}")
    _unknown(spec, RULE_KEYS, f"{field}.")
    for key in ("metric", "operator", "threshold", "direction"):
        if key not in spec:
            raise _fail(f"{field}.{key}", "required")
    if spec["metric"] not in METRICS:
        raise _fail(f"{field}.metric", f"expected one of {', '.join(METRICS)}, got {spec['metric']!r}")
    if spec["operator"] not in OPERATORS:
        raise _fail(f"{field}.operator", f"expected one of {', '.join(OPERATORS)}, got {spec['operator']!r}")
    if spec["direction"] not in DIRECTIONS:
        raise _fail(f"{field}.direction", f"expected Increase or Decrease, got {spec['direction']!r}")
    threshold = spec["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold < 0:
        raise _fail(f"{field}.threshold", f"expected a number of 0 or more, got {threshold!r}")
    return {
        "metric": spec["metric"],
        "operator": spec["operator"],
        "threshold": threshold,
        "window_minutes": _int(spec.get("window_minutes", 5), f"{field}.window_minutes", 1, 1440),
        "direction": spec["direction"],
        "change": _int(spec.get("change", 1), f"{field}.change", 1, MAX_INSTANCES),
        "cooldown_minutes": _int(spec.get("cooldown_minutes", 5), f"{field}.cooldown_minutes", 1, 1440),
    }


def _clock(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise _fail(field, f"expected a time HH:MM (00:00 to 24:00), got {value!r}")
    return value


def _profile(spec: Any, field: str, names: set[str]) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise _fail(field, f"expected an object, got {spec!r}")
    _unknown(spec, PROFILE_KEYS, f"{field}.")
    for key in PROFILE_KEYS:
        if key not in spec:
            raise _fail(f"{field}.{key}", "required")
    name = spec["name"]
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or name == DEFAULT_PROFILE or name in names:
        raise _fail(f"{field}.name", f"expected a unique name of 1 to 64 characters other than 'default', got {name!r}")
    try:
        ZoneInfo(str(spec["timezone"]))
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(f"{field}.timezone", f"unknown time zone {spec['timezone']!r} (e.g. Europe/Paris, UTC)") from None
    days = spec["days"]
    if not isinstance(days, list) or not days or any(day not in DAYS for day in days):
        raise _fail(f"{field}.days", f"expected a list of week days ({', '.join(DAYS)}), got {days!r}")
    start = _clock(spec["start"], f"{field}.start")
    end = _clock(spec["end"], f"{field}.end")
    if end <= start:
        raise _fail(f"{field}.end", f"must be after start {start}, got {end}")
    return {
        "name": name,
        "timezone": str(spec["timezone"]),
        "days": [day for day in DAYS if day in days],
        "start": start,
        "end": end,
        "capacity": _capacity(spec["capacity"], f"{field}.capacity"),
    }


def validate_setting(spec: Any) -> dict[str, Any]:
    """Check an autoscale setting and return the model fields; errors name the field at fault."""
    if not isinstance(spec, dict):
        raise ApplicationError("the autoscale setting must be a JSON object")
    _unknown(spec, SETTING_KEYS, "")
    if "capacity" not in spec:
        raise _fail("capacity", "required (minimum, maximum, default)")
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _fail("enabled", f"expected true or false, got {enabled!r}")
    capacity = _capacity(spec["capacity"], "capacity")
    rules_spec = spec.get("rules", [])
    if not isinstance(rules_spec, list) or len(rules_spec) > 10:
        raise _fail("rules", "expected a list of at most 10 rules")
    profiles_spec = spec.get("profiles", [])
    if not isinstance(profiles_spec, list) or len(profiles_spec) > 20:
        raise _fail("profiles", "expected a list of at most 20 profiles")
    rules = [_rule(rule, f"rules[{i}]") for i, rule in enumerate(rules_spec)]
    profiles: list[dict[str, Any]] = []
    for i, profile in enumerate(profiles_spec):
        profiles.append(_profile(profile, f"profiles[{i}]", {p["name"] for p in profiles}))
    return {
        "enabled": enabled,
        "minimum": capacity["minimum"],
        "maximum": capacity["maximum"],
        "default": capacity["default"],
        "rules": rules,
        "profiles": profiles,
    }


def setting_view(setting: AutoscaleSetting) -> dict[str, Any]:
    """The setting as the API shows it (the same shape it accepts, plus what the evaluator remembers)."""
    return {
        "enabled": setting.enabled,
        "capacity": {"minimum": setting.minimum, "maximum": setting.maximum, "default": setting.default},
        "rules": setting.rules,
        "profiles": setting.profiles,
        "active_profile": setting.active_profile or None,
        "last_action_at": setting.last_action_at.isoformat() if setting.last_action_at else None,
    }


# --- the decision: pure, so it can be tested under any load and any clock ---


@dataclass(frozen=True)
class Decision:
    """What autoscale wants: the instance count, why, and which profile applied."""

    target: int
    reason: str
    profile: str


def active_profile(profiles: list[dict[str, Any]], now: datetime) -> dict[str, Any] | None:
    """The first schedule profile whose recurrence covers `now` in its own time zone."""
    for profile in profiles:
        local = now.astimezone(ZoneInfo(profile["timezone"]))
        if DAYS[local.weekday()] not in profile["days"]:
            continue
        start = time.fromisoformat(profile["start"])
        clock = local.time().replace(tzinfo=None)
        if clock >= start and (profile["end"] == "24:00" or clock < time.fromisoformat(profile["end"])):
            return profile
    return None


def _describe(rule: dict[str, Any], value: float) -> str:
    return f"{rule['metric']} {value:g} {rule['operator']} {rule['threshold']:g} over {rule['window_minutes']} min"


def decide(
    *,
    current: int,
    setting: dict[str, Any],
    values: list[float | None],
    now: datetime,
    last_action_at: datetime | None,
    previous_profile: str,
) -> Decision:
    """The instance count the rules and profiles ask for (values[i] is rule i's metric, None if unknown)."""
    profile = active_profile(setting["profiles"], now)
    if profile is None:
        name, low, high, default = DEFAULT_PROFILE, setting["minimum"], setting["maximum"], setting["default"]
    else:
        capacity = profile["capacity"]
        name, low, high, default = profile["name"], capacity["minimum"], capacity["maximum"], capacity["default"]
    if name != previous_profile:
        label = "the default profile" if name == DEFAULT_PROFILE else f"profile {name!r}"
        return Decision(default, f"autoscale: {label} applies (min {low}, max {high}, default {default})", name)

    def cooling(rule: dict[str, Any]) -> bool:
        return last_action_at is not None and now - last_action_at < timedelta(minutes=rule["cooldown_minutes"])

    rules = setting["rules"]
    fired_out = [
        (rule, value)
        for rule, value in zip(rules, values, strict=True)
        if rule["direction"] == "Increase"
        and value is not None
        and OPERATORS[rule["operator"]](value, rule["threshold"])
    ]
    decrease = [(rule, value) for rule, value in zip(rules, values, strict=True) if rule["direction"] == "Decrease"]
    all_in = bool(decrease) and all(
        value is not None and OPERATORS[rule["operator"]](value, rule["threshold"]) for rule, value in decrease
    )
    target, reason = current, ""
    if fired_out:
        rule, value = max(fired_out, key=lambda pair: pair[0]["change"])
        if cooling(rule):
            reason = f"autoscale: cooling down ({rule['cooldown_minutes']} min) after the last action"
        else:
            target = current + rule["change"]
            reason = f"autoscale: {_describe(rule, value)}: scale out by {rule['change']}"
    elif all_in:
        rule, _ = min(decrease, key=lambda pair: pair[0]["change"])
        if cooling(rule):
            reason = f"autoscale: cooling down ({rule['cooldown_minutes']} min) after the last action"
        else:
            target = current - rule["change"]
            details = "; ".join(_describe(r, v) for r, v in decrease if v is not None)
            reason = f"autoscale: {details}: scale in by {rule['change']}"
    clamped = min(max(target, low), high)
    if clamped != target:
        bound = "maximum" if clamped == high else "minimum"
        where = "the default profile" if name == DEFAULT_PROFILE else f"profile {name!r}"
        reason = f"{reason + '; ' if reason else 'autoscale: '}kept at the {bound} {clamped} of {where}"
        target = clamped
    return Decision(target, reason, name)


# --- evaluation against the store (I/O) ---


def metric_value(*, deployment: Deployment, rule: dict[str, Any], now: datetime) -> float | None:
    """The rule's metric over its window for the deployment; None when nothing measured it."""
    start = now - timedelta(minutes=rule["window_minutes"])
    endpoint = deployment.endpoint.name
    if rule["metric"] == "CpuUtilizationPercentage":
        return metrics.cpu_average(endpoint=endpoint, deployment=deployment.name, start=start, end=now)
    summary = metrics.window_summary(endpoint=endpoint, deployment=deployment.name, start=start, end=now)
    if rule["metric"] == "RequestLatency_P95":
        return summary.percentile(95)
    return summary.requests / rule["window_minutes"] / max(1, deployment.instance_count)


def _max_instances_in_quota(*, deployment: Deployment) -> int:
    row = instance_type_find(name=deployment.instance_type)
    vcpus = row.vcpus if row is not None else 0
    free = settings.STUDIO_CORE_QUOTA - quota_used(exclude=deployment)
    count = 0
    while count < MAX_INSTANCES and cores_needed(instance_count=count + 1, vcpus=vcpus) <= free:
        count += 1
    return count


def _warn_once(deployment: Deployment, message: str) -> None:
    last = deployment.events.order_by("-created_at", "-id").first()
    if last is None or last.reason != "ScaleBlocked" or last.message != message:
        event_record(deployment=deployment, reason="ScaleBlocked", message=message, type=DeploymentEvent.Type.WARNING)


SKIP_STATES = (
    ProvisioningState.CREATING,
    ProvisioningState.DELETING,
    ProvisioningState.FAILED,
    ProvisioningState.CANCELED,
)


def evaluate(*, setting: AutoscaleSetting, now: datetime | None = None) -> Decision | None:
    """Evaluate one deployment's autoscale now; scale it (with the reason on its timeline) if needed."""
    now = now or timezone.now()
    deployment = Deployment.objects.select_related("endpoint").get(pk=setting.deployment_id)
    if not setting.enabled or deployment.state in SKIP_STATES:
        return None
    clean = {
        "minimum": setting.minimum,
        "maximum": setting.maximum,
        "default": setting.default,
        "rules": setting.rules,
        "profiles": setting.profiles,
    }
    values = [metric_value(deployment=deployment, rule=rule, now=now) for rule in setting.rules]
    decision = decide(
        current=deployment.instance_count,
        setting=clean,
        values=values,
        now=now,
        last_action_at=setting.last_action_at,
        previous_profile=setting.active_profile,
    )
    target = decision.target
    if target > deployment.instance_count:
        allowed = _max_instances_in_quota(deployment=deployment)
        if allowed < target:
            _warn_once(
                deployment,
                f"{decision.reason}; wanted {target} instances but the core quota allows {allowed}: OutOfQuota",
            )
            target = max(deployment.instance_count, allowed)
    with transaction.atomic():
        if target != deployment.instance_count:
            try:
                deployment_scale(
                    deployment=deployment,
                    instance_count=target,
                    reason=f"{decision.reason} ({deployment.instance_count} → {target} instances)",
                )
                setting.last_action_at = now
            except ApplicationError as exc:
                _warn_once(deployment, f"{decision.reason}; not applied: {exc.message}")
        setting.active_profile = decision.profile
        setting.save(update_fields=["last_action_at", "active_profile", "updated_at"])
    return Decision(target, decision.reason, decision.profile)


def evaluate_all(*, now: datetime | None = None) -> int:
    """Evaluate every enabled setting; returns how many deployments were scaled."""
    scaled = 0
    for setting in AutoscaleSetting.objects.filter(enabled=True).select_related("deployment"):
        before = setting.deployment.instance_count
        decision = evaluate(setting=setting, now=now)
        if decision is not None and decision.target != before:
            scaled += 1
    return scaled


# --- what the autoscale page shows ---

DECISION_REASONS = ("ScaleDecision", "ScaleBlocked")


def setting_find(*, deployment: Deployment) -> AutoscaleSetting | None:
    """The deployment's autoscale setting, or None when it has none."""
    return AutoscaleSetting.objects.filter(deployment=deployment).first()


def decisions(*, deployment: Deployment, limit: int = 20) -> list[DeploymentEvent]:
    """The last scale decisions (applied or blocked) with their reasons, newest first."""
    rows = deployment.events.filter(reason__in=DECISION_REASONS).order_by("-created_at", "-id")
    return list(rows[:limit])


def instance_count_history(*, deployment: Deployment, limit: int = 200) -> list[tuple[datetime, int]]:
    """The number of instances holding capacity after each change (from the capacity history), oldest first."""
    changes: list[tuple[datetime, int]] = []
    for run in deployment.instance_runs.all():
        changes.append((run.started_at, 1))
        if run.stopped_at is not None:
            changes.append((run.stopped_at, -1))
    changes.sort(key=lambda change: change[0])
    points: list[tuple[datetime, int]] = []
    count = 0
    for moment, step in changes:
        count += step
        if points and points[-1][0] == moment:
            points[-1] = (moment, count)
        else:
            points.append((moment, count))
    return points[-limit:]

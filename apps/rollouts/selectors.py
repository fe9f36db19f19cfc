"""Reads: a rollout's measures from the metrics store, and the rollout as the API, CLI and pages show it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.core.errors import NotFound
from apps.endpoints.models import DeploymentEvent, Endpoint
from apps.monitoring import charts, compare, histogram
from apps.monitoring.models import Grain
from apps.monitoring.selectors import chart_grain, group_columns, window_summary
from apps.rollouts.gates import Measures, where
from apps.rollouts.models import Rollout

WINDOW_GRAIN = int(Grain.TEN_SECONDS)
ERROR_CODES = ("424",)  # the runtime's "the model failed" answer counts as an error, as 5xx do


def window_start(at: datetime) -> datetime:
    """The 10-second interval a step began in: its window starts there (rollups are kept per 10 s)."""
    return at - timedelta(seconds=at.timestamp() % WINDOW_GRAIN, microseconds=0)


def measures(rollout: Rollout, *, now: datetime | None = None) -> Measures:
    """What the metrics store saw since the current step began: the target's and the baseline's live answers."""
    now = now or timezone.now()
    start = window_start(rollout.step_started_at)
    end = now + timedelta(seconds=WINDOW_GRAIN)  # the interval in progress too
    endpoint = rollout.endpoint.name
    if rollout.phase == Rollout.Phase.MIRROR:
        tolerance = settings.STUDIO_MIRROR_TOLERANCE_PPM / 1_000_000
        # Mirror pairs carry their own times: only those since the phase began count.
        found = compare.agreement(
            endpoint=endpoint, deployment=rollout.target, start=rollout.step_started_at, end=end, rel_tol=tolerance
        )
        return Measures(compared=found["compared"], agreed=found["agreed"])
    target = window_summary(
        endpoint=endpoint, deployment=rollout.target, start=start, end=end, mirrored=False, grain=WINDOW_GRAIN
    )
    baseline_latency: dict[int, int] = {}
    baseline_requests = 0
    # At 100 % the baseline serves nothing: what it answered in the interval the step began in (before the split
    # moved) is no baseline for this step's p99, so the ratio is not judged.
    for name in baseline_names(rollout) if rollout.percent < 100 else []:
        summary = window_summary(
            endpoint=endpoint, deployment=name, start=start, end=end, mirrored=False, grain=WINDOW_GRAIN
        )
        baseline_requests += summary.requests
        histogram.merge(baseline_latency, summary.latency)
    errors = target.status.get("5xx", 0) + sum(target.codes.get(code, 0) for code in ERROR_CODES)
    return Measures(
        target_requests=target.requests,
        target_errors=errors,
        target_p99_ms=target.percentile(99),
        baseline_requests=baseline_requests,
        baseline_p99_ms=histogram.percentile(baseline_latency, 99) if baseline_requests else None,
    )


def baseline_names(rollout: Rollout) -> list[str]:
    """The deployments that served live traffic when the rollout started, the target excepted."""
    return [name for name, share in rollout.baseline_traffic.items() if share and name != rollout.target]


def rollout_figures(rollout: Rollout, *, now: datetime | None = None) -> dict[str, dict]:
    """The target's and the baseline's live answers side by side since a minute before the rollout began:
    requests per minute, error rate (as the gate counts errors) and p99 latency."""
    now = now or timezone.now()
    start = window_start(rollout.created_at) - timedelta(minutes=1)
    end = window_start(rollout.finished_at or now) + timedelta(seconds=WINDOW_GRAIN)
    grain = chart_grain(start=start, end=end, now=now)
    baseline = baseline_names(rollout)
    groups = {f"{rollout.target} (target)": [rollout.target], f"baseline ({', '.join(baseline)})": baseline}
    columns = group_columns(
        endpoint=rollout.endpoint.name, groups=groups, start=start, end=end, grain=grain, error_codes=ERROR_CODES
    )
    return charts.comparison_figures(
        columns,
        grain=grain,
        start=start,
        end=end,
        max_error_rate=float(rollout.spec["gates"]["max_error_rate"]),
        now=now,
    )


def rollout_latest(*, endpoint: Endpoint) -> Rollout:
    """The endpoint's running or paused rollout, else its last one."""
    rollout = endpoint.rollouts.order_by("-created_at", "-id").first()
    if rollout is None:
        raise NotFound(
            f"online endpoint {endpoint.name!r} has no rollout; start one with "
            f"`studio online-endpoint rollout start --name {endpoint.name} -f rollout.yml`"
        )
    return rollout


def rollout_active(*, endpoint: Endpoint) -> Rollout | None:
    return endpoint.rollouts.filter(state__in=Rollout.ACTIVE).first()


def active_by_endpoint() -> dict[int, Rollout]:
    """Running or paused rollouts by endpoint id (the endpoint list shows them)."""
    return {r.endpoint_id: r for r in Rollout.objects.filter(state__in=Rollout.ACTIVE)}


def time_left_s(rollout: Rollout) -> float | None:
    """Least time left at the current step (more if answers are still missing); None once finished."""
    if not rollout.active:
        return None
    if rollout.phase == Rollout.Phase.MIRROR:
        duration = float(rollout.spec["mirror_first"]["duration"])
    else:
        duration = float(rollout.spec["step_duration"])
    return round(max(0.0, duration - rollout.step_elapsed_s), 1)


def rollout_events(rollout: Rollout) -> list[dict[str, Any]]:
    """The rollout's entries on the target's timeline, oldest first."""
    rows = DeploymentEvent.objects.filter(
        deployment__endpoint=rollout.endpoint,
        deployment__name=rollout.target,
        reason__startswith="Rollout",
        created_at__gte=rollout.created_at,
    ).order_by("created_at", "id")
    if rollout.finished_at:
        rows = rows.filter(created_at__lte=rollout.finished_at + timedelta(seconds=1))
    return [{"time": e.created_at.isoformat(), "type": e.type, "reason": e.reason, "message": e.message} for e in rows]


def rollout_view(rollout: Rollout) -> dict[str, Any]:
    """The rollout as the API, the CLI and the Traffic tab show it."""
    spec = rollout.spec
    return {
        "id": str(rollout.uid),
        "endpoint": rollout.endpoint.name,
        "deployment": rollout.target,
        "state": rollout.state,
        "phase": rollout.phase,
        "step": rollout.step + 1 if rollout.phase == Rollout.Phase.LIVE else 0,
        "position": where(spec, phase=rollout.phase, step=rollout.step),
        "steps": spec["steps"],
        "percent": rollout.percent,
        "baseline": rollout.baseline_traffic,
        "traffic": rollout.endpoint.traffic,
        "mirror_traffic": rollout.endpoint.mirror_traffic,
        "gates": rollout.gates,
        "sample": rollout.sample,
        "min_requests": spec["mirror_first"]["min_pairs"]
        if rollout.phase == Rollout.Phase.MIRROR
        else spec["min_requests"],
        "message": rollout.message,
        "time_left_s": time_left_s(rollout),
        "spec": spec,
        "created_by": rollout.created_by.get_username() if rollout.created_by else None,
        "started_at": rollout.created_at.isoformat(),
        "finished_at": rollout.finished_at.isoformat() if rollout.finished_at else None,
        "events": rollout_events(rollout),
    }

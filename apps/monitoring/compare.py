"""Compare two deployments over a window: latency percentiles, error rates and throughput side by
side, and for a mirrored deployment the agreement rate of its answers with the live answers to the
same requests (equal JSON, numbers within a relative tolerance), with examples of disagreements.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

from apps.core.errors import ApplicationError
from apps.monitoring.models import MirrorPair
from apps.monitoring.selectors import window_summary

MAX_EXAMPLES = 5
_NOT_JSON = object()


@dataclass(frozen=True)
class Verdict:
    """How two answers compare: equal, equal only within the tolerance, or different (and where)."""

    equal: bool
    exact: bool
    where: str = ""


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return _NOT_JSON


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_compare(live: Any, shadow: Any, *, rel_tol: float, path: str = "$") -> Verdict:
    """Compare two decoded JSON values; numbers are equal within rel_tol of the larger magnitude."""
    if _is_number(live) and _is_number(shadow):
        if live == shadow:
            return Verdict(True, True)
        if isinstance(live, float) and isinstance(shadow, float) and math.isnan(live) and math.isnan(shadow):
            return Verdict(True, True)
        if math.isclose(live, shadow, rel_tol=rel_tol, abs_tol=0.0):
            return Verdict(True, False)
        return Verdict(False, False, f"{path}: {live!r} != {shadow!r}")
    if type(live) is not type(shadow):
        return Verdict(False, False, f"{path}: {type(live).__name__} != {type(shadow).__name__}")
    if isinstance(live, dict):
        if live.keys() != shadow.keys():
            missing = sorted(set(live) ^ set(shadow))
            return Verdict(False, False, f"{path}: keys differ ({', '.join(map(str, missing[:5]))})")
        exact = True
        for key in live:
            verdict = json_compare(live[key], shadow[key], rel_tol=rel_tol, path=f"{path}.{key}")
            if not verdict.equal:
                return verdict
            exact = exact and verdict.exact
        return Verdict(True, exact)
    if isinstance(live, list):
        if len(live) != len(shadow):
            return Verdict(False, False, f"{path}: {len(live)} items != {len(shadow)} items")
        exact = True
        for index, (a, b) in enumerate(zip(live, shadow, strict=True)):
            verdict = json_compare(a, b, rel_tol=rel_tol, path=f"{path}[{index}]")
            if not verdict.equal:
                return verdict
            exact = exact and verdict.exact
        return Verdict(True, exact)
    if live == shadow:
        return Verdict(True, True)
    return Verdict(False, False, f"{path}: {live!r} != {shadow!r}")


def answers_compare(pair: MirrorPair, *, rel_tol: float) -> Verdict:
    """Compare the live and the mirrored answer of one request: status first, then the bodies."""
    if pair.live_status != pair.shadow_status:
        return Verdict(False, False, f"status {pair.live_status} != {pair.shadow_status}")
    live, shadow = _loads(pair.live_body), _loads(pair.shadow_body)
    if live is _NOT_JSON or shadow is _NOT_JSON:
        # Not JSON (text, or cut at the size limit): only identical bytes agree.
        if pair.live_body == pair.shadow_body:
            return Verdict(True, True)
        return Verdict(False, False, "bodies differ (not JSON)")
    return json_compare(live, shadow, rel_tol=rel_tol)


def tolerance_parse(value: str | None) -> float:
    """A relative tolerance from a query parameter (e.g. 1e-6), else STUDIO_MIRROR_TOLERANCE_PPM."""
    if value in (None, ""):
        return settings.STUDIO_MIRROR_TOLERANCE_PPM / 1_000_000
    try:
        tolerance = float(value)
    except ValueError:
        raise ApplicationError(f"tolerance: expected a number like 1e-6, got {value!r}", field="tolerance") from None
    if not 0 <= tolerance < 1:
        raise ApplicationError(f"tolerance: expected a number from 0 to less than 1, got {value!r}", field="tolerance")
    return tolerance


def agreement(*, endpoint: str, deployment: str, start: datetime, end: datetime, rel_tol: float) -> dict[str, Any]:
    """Agreement of a mirrored deployment's answers with the live answers to the same requests."""
    pairs = MirrorPair.objects.filter(endpoint=endpoint, deployment=deployment, ts__gte=start, ts__lt=end)
    compared = agreed = within_tolerance = 0
    examples: list[dict[str, Any]] = []
    live_deployments: set[str] = set()
    for pair in pairs.order_by("ts", "id").iterator(1000):
        compared += 1
        live_deployments.add(pair.live_deployment)
        verdict = answers_compare(pair, rel_tol=rel_tol)
        if verdict.equal:
            agreed += 1
            within_tolerance += 0 if verdict.exact else 1
        elif len(examples) < MAX_EXAMPLES:
            examples.append(
                {
                    "time": pair.ts.isoformat(),
                    "request_id": pair.request_id,
                    "live_deployment": pair.live_deployment,
                    "live_status": pair.live_status,
                    "mirrored_status": pair.shadow_status,
                    "live_body": pair.live_body[:2000],
                    "mirrored_body": pair.shadow_body[:2000],
                    "difference": verdict.where,
                }
            )
    return {
        "deployment": deployment,
        "live_deployments": sorted(live_deployments),
        "tolerance": rel_tol,
        "compared": compared,
        "agreed": agreed,
        "agreed_within_tolerance": within_tolerance,
        "disagreed": compared - agreed,
        "agreement_rate": round(agreed / compared, 6) if compared else None,
        "examples": examples,
    }


def deployments_compare(
    *, endpoint: str, a: str, b: str, start: datetime, end: datetime, rel_tol: float | None = None
) -> dict[str, Any]:
    """Two deployments side by side over [start, end); agreement for whichever received mirrored copies."""
    if a == b:
        raise ApplicationError(f"b: compare two different deployments, got {a!r} twice", field="b")
    if end <= start:
        raise ApplicationError("end: must be after start", field="end")
    rel_tol = settings.STUDIO_MIRROR_TOLERANCE_PPM / 1_000_000 if rel_tol is None else rel_tol
    body: dict[str, Any] = {
        "endpoint": endpoint,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "deployments": [
            window_summary(endpoint=endpoint, deployment=name, start=start, end=end).view() for name in (a, b)
        ],
        "agreement": [],
    }
    for name in (a, b):
        if MirrorPair.objects.filter(endpoint=endpoint, deployment=name, ts__gte=start, ts__lt=end).exists():
            body["agreement"].append(
                agreement(endpoint=endpoint, deployment=name, start=start, end=end, rel_tol=rel_tol)
            )
    return body

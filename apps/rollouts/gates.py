"""The rollout's decisions, as pure functions: (spec, where it is, what was measured) → what to do next.

No database, no clock of its own: the thin layer in services.py measures, asks, and carries the answer out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["wait", "advance", "succeed", "fail"]


@dataclass(frozen=True)
class Measures:
    """What the metrics store saw since the current step began."""

    target_requests: int = 0  # live answers of the target
    target_errors: int = 0  # of those, 5xx or 424
    target_p99_ms: float | None = None
    baseline_requests: int = 0  # live answers of the baseline deployments
    baseline_p99_ms: float | None = None
    compared: int = 0  # mirrored answers compared with the live ones (mirror phase)
    agreed: int = 0


@dataclass(frozen=True)
class Gate:
    """One gate's live value against its threshold (`ok` None while the sample is too small to judge)."""

    name: str
    value: float | None
    threshold: float
    comparison: str  # "<=" or ">="
    unit: str
    ok: bool | None

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": None if self.value is None else round(self.value, 3),
            "threshold": self.threshold,
            "comparison": self.comparison,
            "unit": self.unit,
            "ok": self.ok,
        }


@dataclass(frozen=True)
class Decision:
    action: Action
    message: str
    gates: list[Gate] = field(default_factory=list)
    sample: int = 0
    needed: int = 0


def _pct(value: float) -> str:
    return f"{value:.1f}"


def _ms(value: float | None) -> str:
    """A latency as people read it: 300, 20.2, 7.62 (three figures, no exponent)."""
    if value is None:
        return "—"
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _num(value: float) -> str:
    return f"{value:g}"


def where(spec: dict[str, Any], *, phase: str, step: int) -> str:
    """`step 2 (25 %)` or `mirror (10 %)`, as events and pages name the position."""
    if phase == "mirror":
        return f"mirror ({spec['mirror_first']['percent']} %)"
    return f"step {step + 1} ({spec['steps'][step]} %)"


def decide(spec: dict[str, Any], *, phase: str, step: int, elapsed_s: float, measures: Measures) -> Decision:
    """What to do at this evaluation: wait, move to the next step, succeed, or fail (with the deciding figures)."""
    if phase == "mirror":
        return _decide_mirror(spec, elapsed_s=elapsed_s, measures=measures)
    return _decide_live(spec, step=step, elapsed_s=elapsed_s, measures=measures)


def _decide_mirror(spec: dict[str, Any], *, elapsed_s: float, measures: Measures) -> Decision:
    mirror = spec["mirror_first"]
    here = where(spec, phase="mirror", step=0)
    needed = int(mirror["min_pairs"])
    rate = 100.0 * measures.agreed / measures.compared if measures.compared else None
    judged = measures.compared >= needed
    threshold = float(mirror["min_agreement"])
    gate = Gate("agreement", rate, threshold, ">=", "%", None if not judged or rate is None else rate >= threshold)

    def verdict(action: Action, message: str) -> Decision:
        return Decision(action, message, [gate], measures.compared, needed)

    if not judged:
        return verdict("wait", f"{here}: {measures.compared} of {needed} answers compared so far")
    assert rate is not None
    figures = f"agreement {_pct(rate)} %"
    if rate < threshold:
        return verdict("fail", f"{here}: {figures} < {_num(threshold)} % over {measures.compared} compared answers")
    if elapsed_s < float(mirror["duration"]):
        return verdict("wait", f"{here}: {figures} so far; {_left(mirror['duration'], elapsed_s)}")
    return verdict(
        "advance", f"{here} passed: {figures} ≥ {_num(threshold)} % over {measures.compared} compared answers"
    )


def _decide_live(spec: dict[str, Any], *, step: int, elapsed_s: float, measures: Measures) -> Decision:
    here = where(spec, phase="live", step=step)
    needed = int(spec["min_requests"])
    requests = measures.target_requests
    judged = requests >= needed
    max_error = float(spec["gates"]["max_error_rate"])
    max_ratio = float(spec["gates"]["max_p99_ratio"])
    error_rate = 100.0 * measures.target_errors / requests if requests else None
    ratio = None
    if measures.target_p99_ms is not None and measures.baseline_p99_ms and measures.baseline_requests:
        ratio = measures.target_p99_ms / measures.baseline_p99_ms
    gates = [
        Gate("error_rate", error_rate, max_error, "<=", "%", None if not judged else (error_rate or 0) <= max_error),
        Gate("p99_ratio", ratio, max_ratio, "<=", "×", None if not judged or ratio is None else ratio <= max_ratio),
    ]

    def verdict(action: Action, message: str) -> Decision:
        return Decision(action, message, gates, requests, needed)

    if not judged:
        return verdict("wait", f"{here}: {requests} of {needed} answers from the target so far")
    assert error_rate is not None
    over = f"over {requests} answers"
    if error_rate > max_error:
        return verdict("fail", f"{here}: error rate {_pct(error_rate)} % > {_num(max_error)} % {over}")
    if ratio is not None and ratio > max_ratio:
        return verdict(
            "fail",
            f"{here}: p99 ratio {ratio:.2f} > {_num(max_ratio)} (target {_ms(measures.target_p99_ms)} ms, baseline "
            f"{_ms(measures.baseline_p99_ms)} ms) {over}",
        )
    figures = f"error rate {_pct(error_rate)} % ≤ {_num(max_error)} %"
    if ratio is not None:
        figures += f", p99 ratio {ratio:.2f} ≤ {_num(max_ratio)}"
    if elapsed_s < float(spec["step_duration"]):
        return verdict("wait", f"{here}: {figures} {over} so far; {_left(spec['step_duration'], elapsed_s)}")
    last = step + 1 >= len(spec["steps"])
    return verdict("succeed" if last else "advance", f"{here} passed: {figures} {over}")


def _left(duration: float, elapsed_s: float) -> str:
    return f"{max(0.0, float(duration) - elapsed_s):.0f} s left at this step"


def split_at(baseline: dict[str, int], target: str, percent: int) -> dict[str, int]:
    """The live split with `percent` to the target and the rest over the baseline in its proportions."""
    base = {name: share for name, share in baseline.items() if name != target and share > 0}
    total = sum(base.values())
    rest = 100 - percent
    split = {name: 0 for name in baseline}
    split[target] = percent
    if total == 0 or rest == 0:
        return split
    exact = {name: rest * share / total for name, share in base.items()}
    for name, value in exact.items():
        split[name] = int(value)
    leftover = rest - sum(split[name] for name in base)
    # Largest remainders first, then by name so the split is the same every time.
    for name in sorted(base, key=lambda n: (-(exact[n] - int(exact[n])), n))[:leftover]:
        split[name] += 1
    return split

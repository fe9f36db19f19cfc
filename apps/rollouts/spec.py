"""The rollout YAML (docs/rollouts.md): checked key by key with the schema language of apps/endpoints/yaml."""

from __future__ import annotations

import re
from typing import Any

from apps.endpoints.yaml.fields import Field, fail, object_field, validate

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_DURATION_S = 7 * 24 * 3600


def duration_s(value: Any, path: str) -> float:
    """`60s`, `2m`, `1h`, `500ms` or a number of seconds, as seconds."""
    match = _DURATION.match(str(value)) if not isinstance(value, bool) else None
    if match is None:
        raise fail(path, f"expected a duration such as 60s, 2m or 1h, got {value!r}")
    seconds = float(match[1]) * _UNIT_S[match[2] or "s"]
    if seconds > MAX_DURATION_S:
        raise fail(path, f"expected at most 7 days, got {value!r}")
    return seconds


def _steps(value: Any, path: str) -> list[int]:
    steps: list[int] = []
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 100:
            raise fail(f"{path}[{index}]", f"expected a whole percentage from 1 to 100, got {item!r}")
        if steps and item <= steps[-1]:
            raise fail(path, f"must rise step by step, got {item} after {steps[-1]}")
        steps.append(item)
    if not steps:
        raise fail(path, "expected at least one step, e.g. [10, 25, 50, 100]")
    if steps[-1] != 100:
        raise fail(path, f"must end at 100 (the target takes all traffic when the rollout succeeds), got {steps[-1]}")
    return steps


_DURATION_FIELD = {"kind": "str", "alternatives": ("int", "number"), "check": duration_s, "help": "a duration"}

MIRROR_FIRST = {
    "percent": Field("int", default=10, minimum=1, maximum=50),
    "duration": Field(default="60s", **_DURATION_FIELD),  # type: ignore[arg-type]
    "min_agreement": Field("number", alternatives=("int",), default=99, minimum=0, maximum=100),
    "min_pairs": Field("int", default=20, minimum=1, maximum=1_000_000),
}
GATES = {
    "max_error_rate": Field("number", alternatives=("int",), default=1, minimum=0, maximum=100),
    "max_p99_ratio": Field("number", alternatives=("int",), default=1.5, minimum=1),
}
ROLLOUT = {
    "$schema": Field("str", default=""),
    "deployment": Field("str", required=True, help="the target deployment's name"),
    "mirror_first": Field("object", children=MIRROR_FIRST),
    "steps": Field("list", default=lambda: [10, 25, 50, 100], check=_steps),
    "step_duration": Field(default="60s", **_DURATION_FIELD),  # type: ignore[arg-type]
    "min_requests": Field("int", default=100, minimum=1, maximum=10_000_000),
    "gates": object_field(GATES),
    "on_failure": Field("str", default="rollback", choices=("rollback", "pause")),
}


def rollout_spec(doc: Any) -> dict[str, Any]:
    """The rollout document with defaults filled in and durations as seconds; a bad key names its path."""
    spec = validate(doc, ROLLOUT)
    spec.pop("$schema", None)
    spec["step_duration"] = duration_s(spec["step_duration"], "step_duration")
    if spec.get("mirror_first") is not None:
        spec["mirror_first"]["duration"] = duration_s(spec["mirror_first"]["duration"], "mirror_first.duration")
    else:
        spec["mirror_first"] = None
    return spec
